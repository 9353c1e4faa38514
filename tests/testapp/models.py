"""A host project's own models: payables (an order, a donation), and a swapped payment model."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

from django_paygate.models import AbstractPayment


class Order(models.Model):
    """A payable order: the host decides its price and who may pay it."""

    reference = models.CharField(max_length=32)
    paid = models.BooleanField(default=False)
    amount = models.BigIntegerField(default=50000)
    currency = models.CharField(max_length=3, default="USD")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE
    )
    email = models.EmailField(blank=True)

    def __str__(self) -> str:
        return self.reference

    def get_payment_amount(self) -> tuple[int, str]:
        return self.amount, self.currency

    def get_payment_description(self) -> str:
        return f"Order {self.reference}"

    def can_be_paid_by(self, user: Any) -> bool:
        return bool(user.is_authenticated and user.pk == self.owner_id)

    def get_payment_email(self) -> str:
        return self.email

    def get_payment_return_urls(self) -> tuple[str, str]:
        return f"/orders/{self.pk}/thanks/", f"/orders/{self.pk}/failed/"

    def get_payment_metadata(self) -> dict[str, Any]:
        return {"order": self.reference}


class Donation(models.Model):
    """A payable whose amount the customer chooses, within bounds."""

    currency = models.CharField(max_length=3, default="EUR")

    accepts_customer_amount = (100, 100_000)

    def __str__(self) -> str:
        return f"Donation {self.pk}"

    def get_payment_amount(self) -> tuple[int, str]:
        return 500, self.currency  # the suggested amount

    def get_payment_description(self) -> str:
        return "Donation"

    def can_be_paid_by(self, user: Any) -> bool:
        return bool(user.is_authenticated)

    def get_payment_email(self) -> str:
        return ""

    def get_payment_return_urls(self) -> tuple[str, str]:
        return "/thanks/", "/sorry/"


class ShopPayment(AbstractPayment):
    order = models.ForeignKey(Order, null=True, blank=True, on_delete=models.PROTECT)
