/* A stand-in for the few Stripe.js calls the shipped checkout makes, driving localstripe.
 *
 * localstripe serves a Stripe.js of its own, but without the Payment Element
 * (elements({clientSecret}).create("payment")) or confirmPayment(), which the checkout
 * uses. This file implements just those calls against localstripe's REST API, the way
 * Stripe.js talks to Stripe: attach a test card to the PaymentIntent, confirm it, then
 * send the browser to confirmParams.return_url with Stripe's query parameters.
 * The test serves it as the Stripe provider's script_url; __LOCALSTRIPE__ is replaced
 * with localstripe's address. localstripe accepts only a secret key on these two calls,
 * so the test's route for localstripe adds it (real Stripe.js uses the publishable key
 * and the client secret), and forwards the call itself: Chromium does not let a page
 * that a route served reach a loopback address.
 */
(function () {
  "use strict";
  var API = "__LOCALSTRIPE__";

  function form(data) {
    return Object.keys(data).map(function (k) {
      return encodeURIComponent(k) + "=" + encodeURIComponent(data[k]);
    }).join("&");
  }

  function call(path, data) {
    return fetch(API + path, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: form(data)
    }).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) {
          throw { message: (body.error && body.error.message) || "Your card was declined." };
        }
        return body;
      });
    });
  }

  window.Stripe = function (publishableKey) {
    return {
      elements: function (options) {
        var clientSecret = options.clientSecret;
        return {
          clientSecret: clientSecret,
          create: function (type) {
            if (type !== "payment") {
              throw new Error("This stand-in offers the Payment Element only.");
            }
            return {
              mount: function (selector) {
                var node = document.querySelector(selector);
                var field = document.createElement("div");
                field.className = "paygate-standin-card";
                field.textContent = "Test card •••• 4242   12/34   CVC •••";
                node.appendChild(field);
              }
            };
          },
          submit: function () { return Promise.resolve({}); }
        };
      },
      confirmPayment: function (params) {
        var intent = params.elements.clientSecret.split("_secret_")[0];
        return call("/v1/payment_intents/" + intent, {
          key: publishableKey,
          payment_method: "pm_card_visa"
        }).then(function () {
          return call("/v1/payment_intents/" + intent + "/confirm", { key: publishableKey });
        }).then(function (confirmed) {
          var status = confirmed.status === "succeeded" ? "succeeded" : "failed";
          var url = new URL(params.confirmParams.return_url);
          url.searchParams.set("payment_intent", intent);
          url.searchParams.set("payment_intent_client_secret", params.elements.clientSecret);
          url.searchParams.set("redirect_status", status);
          window.location.assign(url.toString());
          return {};
        }, function (error) {
          return { error: { type: "card_error", message: error.message } };
        });
      }
    };
  };
}());
