"""The shop's reactions to django-paygate's signals.

``payment_succeeded`` and ``refund_succeeded`` are sent once, after the
change is committed, whether it came from the checkout page, a webhook or
``paygate_sync``: these receivers are the one place an order changes status.
"""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver
from django.utils import timezone

from django_paygate.payables import payment_covers
from django_paygate.signals import payment_succeeded, refund_succeeded
from shop.models import Order


@receiver(payment_succeeded, dispatch_uid="shop.mark_order_paid")
def mark_order_paid(sender: Any, payment: Any, **kwargs: Any) -> None:
    """Fulfil only what the payment covers: the order's own amount and currency, now."""
    order = payment.payable
    if isinstance(order, Order) and payment_covers(payment):
        Order.objects.filter(pk=order.pk, status=Order.Status.NEW).update(
            status=Order.Status.PAID, paid_at=timezone.now(), payment_id=payment.pk
        )


@receiver(refund_succeeded, dispatch_uid="shop.mark_order_refunded")
def mark_order_refunded(sender: Any, payment: Any, refund: Any, **kwargs: Any) -> None:
    payment.refresh_from_db(fields=["status"])
    if payment.status == "refunded" and isinstance(payment.payable, Order):
        Order.objects.filter(pk=payment.payable.pk).update(status=Order.Status.REFUNDED)
