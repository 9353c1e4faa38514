from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from django_paygate import services
from django_paygate.models import get_payment_model
from django_paygate.providers.dummy import CARD_SUCCEEDS
from tests.factories import UserFactory


def admin_url(model: Any, view: str, *args: Any) -> str:
    opts = model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)


def payment_url(view: str, *args: Any) -> str:
    return admin_url(get_payment_model(), view, *args)


def permission(codename: str) -> Permission:
    """A permission of the payment model in use, or of paygate's other models."""
    opts = get_payment_model()._meta
    found = Permission.objects.filter(codename=codename, content_type__app_label=opts.app_label)
    return found.first() or Permission.objects.get(
        codename=codename, content_type__app_label="paygate"
    )


def staff_with(*codenames: str, **fields: Any) -> Any:
    """A staff member who may view payments, plus ``codenames``."""
    opts = get_payment_model()._meta
    user = UserFactory(is_staff=True, **fields)
    user.user_permissions.add(
        permission(f"view_{opts.model_name}"), *(permission(c) for c in codenames)
    )
    return user


@pytest.fixture
def superuser(db: Any) -> Any:
    return UserFactory(is_staff=True, is_superuser=True)


@pytest.fixture
def console(client: Any, superuser: Any) -> Any:
    """A test client logged in as a superuser."""
    client.force_login(superuser)
    client.user = superuser
    return client


def captured(amount: int = 1000, currency: str = "USD", **fields: Any) -> Any:
    """A payment the dummy provider captured, as the services leave it."""
    payment = services.create_payment(amount=amount, currency=currency, **fields)
    return services.confirm_payment(payment, payment_method=CARD_SUCCEEDS)


def authorized(amount: int = 1000, currency: str = "USD", **fields: Any) -> Any:
    payment = services.create_payment(amount=amount, currency=currency, capture=False, **fields)
    return services.confirm_payment(payment, payment_method=CARD_SUCCEEDS)
