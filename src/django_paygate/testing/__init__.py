"""A test kit for projects that use django-paygate (see docs/testing.md).

- :mod:`~django_paygate.testing.webhooks`: correctly signed webhook deliveries
  for Stripe, Razorpay and the dummy provider, and :func:`post_webhook`;
- :mod:`~django_paygate.testing.fakes`: make and pay dummy payments, deliver
  the dummy provider's webhook events;
- :mod:`~django_paygate.testing.signals`: :class:`SignalRecorder`;
- :mod:`~django_paygate.testing.contract`: :class:`ProviderContract`, the
  tests every payment provider passes, run against a fake of its API;
- :mod:`~django_paygate.testing.pytest_plugin`: the ``paygate_dummy``,
  ``paygate_signals`` and ``paygate_webhook`` fixtures, loaded automatically.

The names below are importable from here; they are loaded on first use so
that importing this package (as pytest does for the plugin) needs no Django
settings.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "CARD_DECLINED": "fakes",
    "CARD_REQUIRES_ACTION": "fakes",
    "CARD_SUCCEEDS": "fakes",
    "deliver_pending_events": "fakes",
    "find_dummy_provider": "fakes",
    "make_authorized_payment": "fakes",
    "make_payment": "fakes",
    "make_succeeded_payment": "fakes",
    "pay": "fakes",
    "ProviderContract": "contract",
    "ProviderFake": "contract",
    "SignalRecorder": "signals",
    "dummy_event": "webhooks",
    "dummy_payment_data": "webhooks",
    "post_webhook": "webhooks",
    "razorpay_event": "webhooks",
    "razorpay_payment_entity": "webhooks",
    "razorpay_signature": "webhooks",
    "stripe_event": "webhooks",
    "stripe_payment_intent": "webhooks",
    "stripe_signature_header": "webhooks",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = sorted(_EXPORTS)
