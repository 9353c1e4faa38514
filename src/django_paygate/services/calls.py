"""One provider call and what its outcome means: the policy all five verbs share."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from django_paygate.exceptions import (
    PaygateError,
    ProviderIdempotencyError,
    ProviderRequestInProgress,
    ProviderUnavailable,
)
from django_paygate.models import ReviewReason, fit_answer
from django_paygate.services.ledger import review

if TYPE_CHECKING:
    from django_paygate.models import Payment as AnyPayment

logger = logging.getLogger("django_paygate")

_T = TypeVar("_T")


def call_provider(
    payment: AnyPayment,
    operation: str,
    call: Callable[[], _T],
    *,
    refused: Callable[[PaygateError], object] | None = None,
    unsettled: Callable[[], object] | None = None,
    in_progress: Callable[[], _T] | None = None,
) -> _T:
    """Run one provider ``call`` for ``payment`` (made with its idempotency key); map its outcome.

    No transaction is open: the intent was committed before, the answer is
    applied after, under the payment's lock. There are four outcomes:

    - **An answer**, fitted to its columns (:func:`~django_paygate.models.fit_answer`)
      and returned.
    - **Unknown** (:class:`ProviderUnavailable`: a timeout, a 5xx, a lost answer):
      logged, ``unsettled()`` runs, and it is raised. Nothing is undone: a retry
      with the same key, a webhook or ``sync_payment`` settles it. When our own
      earlier request with the same key is still running
      (:class:`ProviderRequestInProgress`), ``in_progress()`` is returned instead
      if given: that request settles it.
    - **Key rejected** (:class:`ProviderIdempotencyError`: the provider knows the
      key from a request with other parameters): the payment is flagged for
      review (``key_rejected``), ``unsettled()`` runs, and it is raised.
    - **Refused**, any other django-paygate error, by the provider or by the
      adapter before it called: ``refused(exc)`` records what the refusal means
      for this operation (a failed payment, a released refund), and it is raised.
    """
    try:
        answer = call()
    except ProviderRequestInProgress as exc:
        if in_progress is not None:
            return in_progress()
        _unknown(payment, operation, exc, unsettled)
        raise
    except ProviderUnavailable as exc:
        _unknown(payment, operation, exc, unsettled)
        raise
    except ProviderIdempotencyError as exc:
        review(payment, ReviewReason.KEY_REJECTED, f"{operation}: {exc}")
        if unsettled is not None:
            unsettled()
        raise
    except PaygateError as exc:
        if refused is not None:
            refused(exc)
        raise
    return fit_answer(answer)


def _unknown(
    payment: AnyPayment,
    operation: str,
    exc: ProviderUnavailable,
    unsettled: Callable[[], object] | None,
) -> None:
    logger.warning(
        "Payment %s: %s, outcome unknown (%s); a retry or a sync settles it.",
        payment.pk,
        operation,
        exc.code,
    )
    if unsettled is not None:
        unsettled()
