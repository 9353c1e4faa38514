"""Helpers around the dummy provider: make payments, pay them, deliver their webhooks.

They go through :mod:`django_paygate.services` and the real webhook
endpoint, exactly as production code does; nothing here writes a row
directly. They need the database (``@pytest.mark.django_db``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# The dummy provider's test cards, repeated here so tests read plainly.
#: A dummy-provider card number that is charged at once.
CARD_SUCCEEDS = "4242424242424242"
#: A dummy-provider card number that is declined.
CARD_DECLINED = "4000000000000002"
#: A dummy-provider card number that asks for a customer step (3-D Secure) first.
CARD_REQUIRES_ACTION = "4000002500003155"

if TYPE_CHECKING:
    from django.http import HttpResponse
    from django.test import Client

    from django_paygate.models import AbstractPayment
    from django_paygate.providers.dummy import DummyProvider


def find_dummy_provider(alias: str | None = None) -> DummyProvider:
    """The configured :class:`DummyProvider` (``alias``, else the first one configured).

    Raises ``LookupError`` when ``PAYGATE["PROVIDERS"]`` has no dummy provider.
    """
    from django_paygate.conf import paygate_settings
    from django_paygate.providers import get_provider, load_backend
    from django_paygate.providers.dummy import DummyProvider

    if alias is not None:
        provider = get_provider(alias)
        if not isinstance(provider, DummyProvider):
            raise LookupError(
                f"Provider {alias!r} is a {type(provider).__name__}, not a DummyProvider."
            )
        return provider
    for name, conf in paygate_settings.PROVIDERS.items():
        if issubclass(load_backend(str(conf.get("BACKEND", ""))), DummyProvider):
            return get_provider(name)  # type: ignore[return-value]
    raise LookupError(
        "No DummyProvider is configured: add "
        '"dummy": {"BACKEND": "django_paygate.providers.dummy.DummyProvider"} '
        'to PAYGATE["PROVIDERS"] in your test settings.'
    )


def pay(payment: AbstractPayment, card: str = CARD_SUCCEEDS, **data: Any) -> AbstractPayment:
    """Confirm ``payment`` with a dummy test ``card``; returns the updated payment.

    With the default card the payment succeeds (or is authorized for
    ``capture=False``). Raises :class:`~django_paygate.exceptions.PaymentDeclined`
    for a declined card, like :func:`~django_paygate.services.confirm_payment`.
    """
    from django_paygate import services

    return services.confirm_payment(payment, payment_method=card, **data)


def make_payment(
    *,
    amount: int = 1000,
    currency: str = "USD",
    provider: str | None = None,
    **kwargs: Any,
) -> AbstractPayment:
    """A ``pending`` payment at the dummy provider, made by ``services.create_payment``.

    ``kwargs`` go to ``create_payment`` (``user=``, ``email=``,
    ``metadata=``, ``capture=False``…). ``provider`` defaults to the
    configured dummy provider's alias, whatever ``DEFAULT_PROVIDER`` is.
    """
    from django_paygate import services

    alias = provider or find_dummy_provider().alias
    return services.create_payment(amount=amount, currency=currency, provider=alias, **kwargs)


def make_succeeded_payment(*, card: str = CARD_SUCCEEDS, **kwargs: Any) -> AbstractPayment:
    """A payment that went through: created with ``kwargs`` (see :func:`make_payment`), then paid.

    With ``capture=False`` it ends ``authorized`` instead of ``succeeded``.
    """
    return pay(make_payment(**kwargs), card)


def make_authorized_payment(**kwargs: Any) -> AbstractPayment:
    """A payment with manual capture, authorized and waiting for ``services.capture_payment``."""
    return make_succeeded_payment(capture=False, **kwargs)


def deliver_pending_events(
    client: Client, provider: DummyProvider | None = None, *, check: bool = True
) -> list[HttpResponse]:
    """POST every webhook event ``provider`` recorded, in order, to its webhook URL.

    The delivered events are removed from ``provider.sent_events`` so each
    goes once; post the same delivery again yourself to test duplicates.
    With ``check`` (the default), a response other than 200 raises
    ``AssertionError``. Returns the responses.
    """
    from django_paygate.testing.webhooks import post_webhook

    provider = provider or find_dummy_provider()
    pending = list(provider.sent_events)
    del provider.sent_events[: len(pending)]
    responses = []
    for body, headers in pending:
        response = post_webhook(client, provider.alias, body, headers)
        if check and response.status_code != 200:
            raise AssertionError(
                f"The {provider.alias} webhook answered {response.status_code}: "
                f"{response.content[:200]!r}"
            )
        responses.append(response)
    return responses


__all__ = [
    "CARD_DECLINED",
    "CARD_REQUIRES_ACTION",
    "CARD_SUCCEEDS",
    "deliver_pending_events",
    "find_dummy_provider",
    "make_authorized_payment",
    "make_payment",
    "make_succeeded_payment",
    "pay",
]
