/* A stand-in for Razorpay Checkout.js: the few calls the shipped checkout makes.
 *
 * new Razorpay(options), .on("payment.failed", fn), .open(). open() shows a small
 * payment window with a "Pay" and a "Decline" button. Paying posts the order to the
 * test's fake Razorpay (served by the test at https://checkout.razorpay.test/pay), which
 * records a payment attempt on the order and answers what real Checkout hands its
 * handler: razorpay_order_id, razorpay_payment_id and a razorpay_signature made with the
 * key secret, which only the server side knows. Declining calls the payment.failed
 * handlers with Razorpay's error shape.
 */
(function () {
  "use strict";
  var PAY = "https://checkout.razorpay.test/pay";

  function button(text, className) {
    var element = document.createElement("button");
    element.type = "button";
    element.textContent = text;
    element.className = className;
    return element;
  }

  window.Razorpay = function (options) {
    this.options = options;
    this.handlers = {};
  };

  window.Razorpay.prototype.on = function (name, handler) {
    this.handlers[name] = handler;
  };

  window.Razorpay.prototype.open = function () {
    var self = this;
    var box = document.createElement("div");
    box.className = "paygate-standin-razorpay";
    box.setAttribute("role", "dialog");
    var title = document.createElement("p");
    title.textContent = self.options.name + ": " + self.options.currency + " " +
      (self.options.amount / 100).toFixed(2) + " (order " + self.options.order_id + ")";
    var pay = button("Pay", "paygate-standin-pay");
    var decline = button("Decline", "paygate-standin-decline");
    box.appendChild(title);
    box.appendChild(pay);
    box.appendChild(decline);
    document.body.appendChild(box);

    pay.addEventListener("click", function () {
      fetch(PAY, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ key: self.options.key, order_id: self.options.order_id,
                               notes: self.options.notes })
      }).then(function (response) { return response.json(); }).then(function (answer) {
        box.remove();
        self.options.handler(answer);
      });
    });
    decline.addEventListener("click", function () {
      box.remove();
      if (self.handlers["payment.failed"]) {
        self.handlers["payment.failed"]({ error: { code: "BAD_REQUEST_ERROR",
          description: "Your payment was declined by the bank.", reason: "payment_failed" } });
      }
    });
  };
}());
