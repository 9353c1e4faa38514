/* django-paygate checkout: one script for every provider's widget.
 *
 * No build step and no inline script: the settings come from the JSON data block
 * #paygate-config (Django's json_script), so the page works under a strict
 * Content-Security-Policy that allows 'self' and the provider's script host.
 * The browser never sends a price: the server priced the payment from the
 * host's own object.
 */
(function () {
  "use strict";

  var root = document.querySelector("[data-paygate-checkout]");
  var configNode = document.getElementById("paygate-config");
  if (!root || !configNode) {
    return;
  }
  var config = JSON.parse(configNode.textContent);
  var message = root.querySelector("[data-paygate-message]");
  var csrfInput = root.querySelector("input[name=csrfmiddlewaretoken]");
  var csrf = csrfInput ? csrfInput.value : "";
  var payButton = root.querySelector("[data-paygate-pay]");
  var GENERIC = "Something went wrong. Please try again.";

  function show(text, kind) {
    message.textContent = text || "";
    message.className = "paygate-message paygate-" + (kind || "error");
    message.hidden = !text;
  }

  function busy(on) {
    if (!payButton) {
      return;
    }
    payButton.disabled = on;
    payButton.setAttribute("aria-busy", on ? "true" : "false");
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify(body || {})
    }).then(function (response) {
      if (response.status === 204) {
        return { status: 204, body: null };
      }
      return response.json().then(
        function (data) { return { status: response.status, body: data }; },
        function () { return { status: response.status, body: null }; }
      );
    });
  }

  function errorOf(result) {
    return (result.body && result.body.error) || { code: "", message: GENERIC };
  }

  function finish() {
    window.location.assign(config.return_url);
  }

  function networkError() {
    show("The connection failed. Please check it and try again.");
    busy(false);
  }

  /* Our own confirm_payment/ API: the answer decides what the page shows next. */
  function confirm(data, onAction) {
    data.payment_id = config.payment_id;
    return post(config.confirm_url, data).then(function (result) {
      if (result.status === 200 && result.body.status === "requires_action") {
        busy(false);
        onAction();
        return;
      }
      if (result.status === 200) {
        show("Payment accepted. One moment…", "success");
        finish();
        return;
      }
      var error = errorOf(result);
      if (error.code === "payment_declined") {
        show(error.message + " Try another card.");
      } else {
        show(error.message);
      }
      busy(error.code === "payable_changed");
    }, networkError);
  }

  /* -- dummy: a card form with test cards and a 3-D Secure step ------------------ */

  function dummy() {
    var form = root.querySelector("[data-paygate-dummy-form]");
    var input = root.querySelector("#paygate-card");
    var step = root.querySelector("[data-paygate-3ds]");
    var authenticate = root.querySelector("[data-paygate-authenticate]");

    function askForAuthentication() {
      form.hidden = true;
      step.hidden = false;
      show("");
      authenticate.focus();
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var card = input.value.replace(/[\s-]+/g, "");
      if (!/^[0-9]{12,19}$/.test(card)) {
        show("Enter the card number, digits only.");
        input.focus();
        return;
      }
      busy(true);
      show("");
      confirm({ payment_method: card }, askForAuthentication).then(function () {
        if (!message.hidden && message.className.indexOf("paygate-error") !== -1) {
          input.select();
        }
      });
    });
    authenticate.addEventListener("click", function () {
      authenticate.disabled = true;
      confirm({}, askForAuthentication).then(function () {
        authenticate.disabled = false;
      });
    });
    if (config.status === "requires_action") {
      askForAuthentication();
    }
  }

  /* -- Stripe: the Payment Element, confirmed in the browser ----------------------- */

  function stripe() {
    if (typeof window.Stripe !== "function") {
      show("The payment form could not be loaded. Please reload the page.");
      return;
    }
    var client = config.client;
    var api = window.Stripe(client.publishable_key);
    var elements = api.elements({ clientSecret: client.client_secret });
    var element = elements.create("payment");
    element.mount("#paygate-payment-element");
    busy(false);
    root.querySelector("[data-paygate-stripe-form]").addEventListener("submit", function (event) {
      event.preventDefault();
      busy(true);
      show("");
      elements.submit().then(function (submitted) {
        if (submitted && submitted.error) {
          show(submitted.error.message);
          busy(false);
          return null;
        }
        // The price is checked on the server right before the browser confirms.
        return post(config.check_url).then(function (checked) {
          if (checked.status !== 204) {
            show(errorOf(checked).message);
            busy(errorOf(checked).code === "payable_changed");
            return null;
          }
          return api.confirmPayment({
            elements: elements,
            confirmParams: { return_url: config.return_url }
          }).then(function (result) {
            // Only an error comes back here: success redirects to the return URL.
            if (result && result.error) {
              show(result.error.message || "The payment was declined.");
              busy(false);
            }
          });
        });
      }).catch(networkError);
    });
  }

  /* -- Razorpay: Checkout.js; its signature is verified by our confirm_payment/ ------ */

  function razorpay() {
    if (typeof window.Razorpay !== "function") {
      show("The payment window could not be loaded. Please reload the page.");
      return;
    }
    payButton.addEventListener("click", function () {
      var client = config.client;
      var options = {
        key: client.key_id,
        order_id: client.order_id,
        amount: client.amount,
        currency: client.currency,
        name: client.name,
        description: client.description,
        prefill: client.prefill,
        notes: client.notes,
        handler: function (response) {
          show("Checking the payment…", "info");
          confirm({
            razorpay_order_id: response.razorpay_order_id,
            razorpay_payment_id: response.razorpay_payment_id,
            razorpay_signature: response.razorpay_signature
          }, function () { show(GENERIC); });
        },
        modal: {
          ondismiss: function () {
            show("The payment was not completed. You can try again.", "info");
            busy(false);
          }
        }
      };
      busy(true);
      show("");
      var checkout = new window.Razorpay(options);
      checkout.on("payment.failed", function (response) {
        var error = response && response.error;
        show((error && error.description) || "The payment failed. Try another method.");
        busy(false);
      });
      checkout.open();
    });
  }

  var widgets = { dummy: dummy, stripe: stripe, razorpay: razorpay };
  if (widgets[config.provider]) {
    widgets[config.provider]();
  }
}());
