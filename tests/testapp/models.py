"""A host project's own models: an Order, and a swapped payment model pointing at it."""

from __future__ import annotations

from django.db import models

from django_paygate.models import AbstractPayment


class Order(models.Model):
    reference = models.CharField(max_length=32)
    paid = models.BooleanField(default=False)

    def __str__(self) -> str:
        return self.reference


class ShopPayment(AbstractPayment):
    order = models.ForeignKey(Order, null=True, blank=True, on_delete=models.PROTECT)
