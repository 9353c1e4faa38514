"""The shop's one model: an order, paid through a django-paygate payment."""

from __future__ import annotations

import uuid

import swapper
from django.db import models

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
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    # The payment model is swappable (PAYGATE_PAYMENT_MODEL): point at whichever is in use.
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
