"""The shop's one model: an order, paid through a django-paygate payment."""

from __future__ import annotations

import uuid
from typing import Any

import swapper
from django.conf import settings
from django.db import models
from django.urls import reverse

from django_paygate.money import format_money


class Order(models.Model):
    class Status(models.TextChoices):
        NEW = "new", "Awaiting payment"
        PAID = "paid", "Paid"
        REFUNDED = "refunded", "Refunded"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    product = models.CharField(max_length=100)
    amount = models.PositiveBigIntegerField(help_text="In the currency's minor unit.")
    currency = models.CharField(max_length=3)
    email = models.EmailField(blank=True)
    #: Who may pay it (the shop logs a guest in when it takes the order).
    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    # The latest payment, for the order page. The payment's own link to the order is
    # payment.payable (a payable, see django_paygate.payables). The payment model is
    # swappable (PAYGATE_PAYMENT_MODEL): point at whichever is in use.
    payment = models.ForeignKey(
        swapper.get_model_name("paygate", "Payment"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"{self.product} ({self.total})"

    @property
    def total(self) -> str:
        return format_money(self.amount, self.currency)

    # -- django_paygate.payables.Payable: the order sets its own price ---------------

    def get_payment_amount(self) -> tuple[int, str]:
        return self.amount, self.currency

    def get_payment_description(self) -> str:
        return f"{self.product} (order {str(self.pk)[:8]})"

    def can_be_paid_by(self, user: Any) -> bool:
        return bool(user.is_authenticated and user.pk == self.customer_id)

    def get_payment_email(self) -> str:
        return self.email

    def get_payment_return_urls(self) -> tuple[str, str]:
        page = reverse("shop:order", args=[self.pk])
        return page, page

    def get_payment_metadata(self) -> dict[str, Any]:
        return {"order_id": str(self.pk)}
