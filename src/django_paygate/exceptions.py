"""The exceptions django-paygate raises.

Everything the library raises on purpose is a :class:`PaygateError`. Each
class carries a machine-readable ``code`` and the HTTP status the JSON API
answers with, so views never need a mapping table of their own.

This module imports nothing from Django, so providers and pure helpers can
use it freely. Messages never contain secrets, card data or raw provider
payloads.
"""

from __future__ import annotations

from typing import Any, ClassVar


class PaygateError(Exception):
    """Root of every error django-paygate raises on purpose."""

    code: ClassVar[str] = "paygate_error"
    status_code: ClassVar[int] = 400

    def __init__(self, message: str = "", *, provider: str | None = None, **extra: Any) -> None:
        super().__init__(message or self.__class__.__doc__ or self.code)
        self.message = message or (self.__class__.__doc__ or self.code).strip().splitlines()[0]
        self.provider = provider
        self.extra = extra

    def __str__(self) -> str:
        return self.message


class ConfigurationError(PaygateError):
    """The PAYGATE setting is missing something or holds something wrong."""

    code = "configuration_error"
    status_code = 500


class UnknownProvider(ConfigurationError, LookupError):
    """No provider is configured under that alias."""

    code = "unknown_provider"
    status_code = 400


class InvalidAmount(PaygateError, ValueError):
    """The amount or currency cannot be charged."""

    code = "invalid_amount"
    status_code = 400


class InvalidTransition(PaygateError):
    """The payment is not in a state that allows this operation."""

    code = "invalid_state"
    status_code = 409


class RefundExceedsCaptured(InvalidAmount):
    """The refund is larger than what is left to refund."""

    code = "refund_exceeds_captured"
    status_code = 400


class IdempotencyConflict(PaygateError):
    """The idempotency key was already used with different parameters."""

    code = "idempotency_conflict"
    status_code = 409


class AlreadyPaid(PaygateError):
    """This payable is already paid."""

    code = "already_paid"
    status_code = 409


class NotSupported(PaygateError):
    """This provider does not offer that operation (a capture, a cancel)."""

    code = "not_supported"
    status_code = 400


class PaymentInProgress(PaygateError):
    """Another request is opening this payment at the provider right now; retry in a moment."""

    code = "in_progress"
    status_code = 409


class PayableChanged(PaygateError):
    """The amount due changed since this payment was created; it was canceled.

    Raised when a payment is confirmed after its payable's amount or currency
    changed: it is never charged at the old price. Start a new payment.
    """

    code = "payable_changed"
    status_code = 409


class CheckoutVerificationError(PaygateError):
    """The customer's checkout response does not belong to this payment.

    Raised by ``confirm_payment`` when the provider's checkout signature (for
    example Razorpay's) does not match the order we stored. Nothing changes.
    """

    code = "checkout_signature_invalid"
    status_code = 400


class PaymentDeclined(PaygateError):
    """The provider declined the payment."""

    code = "payment_declined"
    status_code = 402

    def __init__(self, message: str = "", *, decline_code: str = "", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.decline_code = decline_code


class ActionRequired(PaygateError):
    """The customer must complete an extra step (for example 3-D Secure)."""

    code = "action_required"
    status_code = 402

    def __init__(self, message: str = "", *, next_action: Any = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.next_action = next_action


class ProviderError(PaygateError):
    """The provider refused the request."""

    code = "provider_error"
    status_code = 502


class ProviderUnavailable(ProviderError):
    """The provider could not be reached or did not answer in time.

    The outcome of the call is unknown. It is safe to retry with the same
    idempotency key; ``sync_payment`` resolves the payment either way.
    """

    code = "provider_unavailable"
    status_code = 503


class ProviderRequestInProgress(ProviderUnavailable):
    """Another request with the same idempotency key is still running at the provider.

    Nothing is known yet: the other request settles it (a sync or a webhook
    records its outcome), and a retry later with the same key gets its answer.
    """

    code = "provider_request_in_progress"
    status_code = 409


class ProviderIdempotencyError(ProviderError):
    """The provider rejected a reused idempotency key as a different request."""

    code = "provider_idempotency_error"
    status_code = 409


class WebhookVerificationError(PaygateError):
    """The webhook's signature, headers or body could not be verified."""

    code = "webhook_verification_failed"
    status_code = 400
