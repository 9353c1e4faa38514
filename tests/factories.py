from __future__ import annotations

from typing import Any

import factory
from django.contrib.auth import get_user_model

from django_paygate.models import Refund, get_payment_model


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")


class PaymentFactory(factory.django.DjangoModelFactory):
    """A payment row as the services would leave it; ``status`` drives the amounts."""

    class Meta:
        model = get_payment_model()

    provider = "dummy"
    provider_payment_id = factory.Sequence(lambda n: f"dummy_test_{n}")
    amount = 1000
    currency = "USD"
    status = "pending"
    email = "buyer@example.com"

    @classmethod
    def _create(cls, model_class: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("status") in {"succeeded", "partially_refunded", "refunded"}:
            kwargs.setdefault("amount_captured", kwargs.get("amount", 1000))
        return super()._create(model_class, *args, **kwargs)


class RefundFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Refund

    payment = factory.SubFactory(PaymentFactory, status="succeeded")
    amount = 100
    currency = "USD"
