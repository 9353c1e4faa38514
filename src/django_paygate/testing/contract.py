"""The provider contract: what every payment provider must do, as tests.

:class:`ProviderContract` is a mixin of test methods. A provider's test module
subclasses it, names the provider's alias and hands it a *fake* of the
provider's own API (see :class:`ProviderFake`); every test then runs the real
services and the real webhook endpoint against that fake::

    import pytest
    from django_paygate.testing.contract import ProviderContract

    pytestmark = pytest.mark.django_db

    class TestAcmeContract(ProviderContract):
        provider_alias = "acme"
        signature_headers = ("Acme-Signature",)

        @pytest.fixture(autouse=True)
        def _fake(self, acme_api):          # your fixture: settings + mocked HTTP
            self.fake = AcmeFake(acme_api)  # implements ProviderFake

With unittest, subclass ``ProviderContract`` and ``django.test.TestCase``
and set ``self.fake`` in ``setUp``. The tests use plain ``assert`` with a
message, so they read the same under both runners.

What the contract covers: an idempotent create (one key, one provider object),
a create, confirm, capture or refund whose answer is lost and that
``sync_payment`` finishes, a decline (and a retry that succeeds), captures
(when ``supports_capture``), partial and repeated refunds, a refund whose
webhook overtakes the provider's answer, with and without our refund id in
the event, bad, missing and rotated webhook signatures, header names in any
case, event types that are stored and ignored, and duplicate deliveries.

Nothing here depends on how a provider stores its state: only on the
services, the webhook endpoint and the hooks of :class:`ProviderFake`.
"""

from __future__ import annotations

import copy
import unittest
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

if TYPE_CHECKING:
    from django.http import HttpResponse

    from django_paygate.models import AbstractPayment, Refund
    from django_paygate.providers.base import BaseProvider

E = TypeVar("E", bound=BaseException)

#: ``(body, headers)``: what the provider POSTs to the webhook endpoint.
Delivery = tuple[bytes, dict[str, str]]

#: The kinds of event :meth:`ProviderFake.signed_event` builds.
PAYMENT_SUCCEEDED = "payment.succeeded"
REFUND_SUCCEEDED = "refund.succeeded"
IGNORED = "ignored"

#: The operations whose answer :meth:`ProviderFake.lose_next_answer` loses.
OPERATIONS = ("create", "confirm", "capture", "refund")

#: A secret no provider is configured with.
WRONG_SECRET = "paygate-contract-wrong-secret-0000"
#: The secret added in front of the configured ones to test a rotation.
ROTATED_SECRET = "paygate-contract-new-secret-1111"


class ProviderFake(Protocol):
    """The hooks a provider's test module implements over its fake API.

    The fake is the provider's side of the wire (its HTTP API mocked with
    ``responses``, an in-memory server, a sandbox): state the provider keeps,
    idempotency keys it honours, and the webhooks it would send.
    """

    def confirm_data(self, payment: AbstractPayment) -> dict[str, Any]:
        """What the customer's checkout posts back for ``payment``: the keyword
        arguments of ``services.confirm_payment`` (a payment method, a signed
        Checkout answer…). The customer pays with it, unless :meth:`decline_next`
        was called."""
        ...

    def decline_next(self) -> None:
        """The next confirmation is declined (a card the bank refuses)."""
        ...

    def lose_next_answer(self, operation: str) -> None:
        """The next call of ``operation`` (one of :data:`OPERATIONS`) takes effect
        at the provider, but its answer is lost (a read timeout): the adapter must
        raise :class:`~django_paygate.exceptions.ProviderUnavailable`."""
        ...

    def payment_objects(self, payment: AbstractPayment) -> list[str]:
        """The ids of every payment object the provider holds for ``payment``
        (found by our payment id, as the provider stores it)."""
        ...

    def refund_objects(self, payment: AbstractPayment) -> list[str]:
        """The ids of every refund the provider made for ``payment``."""
        ...

    def signed_event(
        self,
        kind: str,
        payment: AbstractPayment,
        *,
        refund_id: str = "",
        secret: str | None = None,
    ) -> Delivery:
        """A delivery the provider would POST, signed with ``secret`` (default:
        the configured webhook secret).

        ``kind`` is :data:`PAYMENT_SUCCEEDED` (``payment`` was paid in full),
        :data:`REFUND_SUCCEEDED` (the refund ``refund_id`` succeeded; built from
        the provider's own record of it, so it carries our refund id only if
        the provider echoes it) or :data:`IGNORED` (a type the provider sends
        that django-paygate does not act on). Each call makes a new event id.
        """
        ...


class ProviderContract:
    """Test methods every provider passes; see the module docstring."""

    #: The alias the provider is configured under in ``PAYGATE["PROVIDERS"]``.
    provider_alias: ClassVar[str] = ""
    #: An amount and currency the provider can charge (and refund in thirds).
    amount: ClassVar[int] = 6000
    currency: ClassVar[str] = "USD"
    #: Whether the provider can authorize now and capture later (``capture=False``).
    supports_capture: ClassVar[bool] = True
    #: Whether it can capture less than was authorized; if not, it must refuse.
    supports_partial_capture: ClassVar[bool] = False
    #: The header(s) that carry the webhook signature.
    signature_headers: ClassVar[tuple[str, ...]] = ()
    #: The option that holds the webhook secret (a string or a list of them).
    webhook_secret_option: ClassVar[str] = "webhook_secret"

    #: The provider's fake API; set by the subclass before each test.
    fake: ProviderFake

    # -- helpers ---------------------------------------------------------------

    def contract_provider(self) -> BaseProvider:
        from django_paygate.providers import get_provider

        return get_provider(self.provider_alias)

    def contract_create(self, *, capture: bool = True) -> AbstractPayment:
        from django_paygate import services

        return services.create_payment(
            amount=self.amount,
            currency=self.currency,
            provider=self.provider_alias,
            email="contract@example.com",
            description="Provider contract",
            capture=capture,
        )

    def contract_paid(self) -> AbstractPayment:
        """A payment the customer paid in full."""
        from django_paygate import services

        payment = self.contract_create()
        paid = services.confirm_payment(payment, **self.fake.confirm_data(payment))
        assert paid.status == "succeeded", f"a paid payment is {paid.status}, not succeeded"
        assert paid.amount_captured == self.amount, f"captured {paid.amount_captured}"
        return paid

    def contract_post(self, delivery: Delivery) -> HttpResponse:
        """POST ``delivery`` to this provider's webhook endpoint."""
        from django.test import Client

        from django_paygate.testing.webhooks import post_webhook

        body, headers = delivery
        return post_webhook(Client(), self.provider_alias, body, headers)

    def contract_refresh(self, payment: AbstractPayment) -> Any:
        from django_paygate.models import get_payment_model

        return get_payment_model().objects.get(pk=payment.pk)

    @staticmethod
    def contract_refunds(payment: AbstractPayment) -> list[Refund]:
        from django_paygate.models import Refund

        return list(Refund.objects.filter(payment_id=payment.pk).order_by("created_at", "id"))

    @staticmethod
    def contract_owed(payment: AbstractPayment, kind: str) -> int:
        """How many notifications of ``kind`` the payment owes (its outbox rows)."""
        from django_paygate.models import Notification

        return Notification.objects.filter(payment_id=payment.pk, kind=kind).count()

    @staticmethod
    def contract_moves(payment: AbstractPayment, to_status: str) -> int:
        """How many audited changes moved the payment to ``to_status``."""
        from django.db.models import F

        from django_paygate.models import PaymentEvent

        return (
            PaymentEvent.objects.filter(payment_id=payment.pk, to_status=to_status)
            .exclude(from_status=F("to_status"))
            .count()
        )

    @contextmanager
    def contract_intercept(self, method: str, after: Callable[[Any], None]) -> Iterator[list[str]]:
        """Run ``after(result)`` when the provider's ``method`` returns, before the
        services see the answer; yields the idempotency keys it was called with."""
        provider = self.contract_provider()
        real = getattr(provider, method)
        keys: list[str] = []

        def intercepted(*args: Any, **kwargs: Any) -> Any:
            keys.append(str(kwargs.get("idempotency_key", "")))
            result = real(*args, **kwargs)
            after(result)
            return result

        setattr(provider, method, intercepted)
        try:
            yield keys
        finally:
            delattr(provider, method)

    def contract_assert_refunded(self, payment: AbstractPayment, amount: int) -> None:
        """``amount`` refunded, one succeeded row per provider refund, nothing held."""
        payment = self.contract_refresh(payment)
        rows = self.contract_refunds(payment)
        at_provider = sorted(self.fake.refund_objects(payment))
        assert payment.amount_refunded == amount, f"refunded {payment.amount_refunded} != {amount}"
        assert sorted(str(r.provider_refund_id) for r in rows) == at_provider, (
            f"refund rows {[(r.provider_refund_id, r.status) for r in rows]} "
            f"!= provider refunds {at_provider}"
        )
        assert all(r.status == "succeeded" for r in rows), [r.status for r in rows]
        assert not payment.needs_review, payment.review_reason
        expected = "refunded" if amount == payment.amount_captured else "partially_refunded"
        assert payment.status == expected, f"{payment.status} != {expected}"
        owed = self.contract_owed(payment, "refund_succeeded")
        assert owed == len(rows), f"{owed} refund notifications for {len(rows)} refunds"

    @staticmethod
    def contract_raises(expected: type[E], call: Callable[[], Any], what: str) -> E:
        """The ``expected`` error that ``call()`` raises; fails the test if it raises none."""
        try:
            call()
        except expected as exc:
            return exc
        raise AssertionError(f"{what} did not raise {expected.__name__}")

    def contract_lose(self, operation: str, call: Callable[[], Any]) -> None:
        """Run ``call()`` with the answer of its ``operation`` lost on the way back."""
        from django_paygate.exceptions import ProviderUnavailable

        self.fake.lose_next_answer(operation)
        self.contract_raises(ProviderUnavailable, call, f"a lost {operation} answer")

    def contract_lost_refund(self) -> AbstractPayment:
        """A paid payment with a refund of a third that the provider made, its answer lost."""
        from django_paygate import services

        payment = self.contract_paid()
        self.contract_lose(
            "refund", lambda: services.refund_payment(payment, amount=self.amount // 3)
        )
        return payment

    @staticmethod
    def contract_ok(response: HttpResponse) -> None:
        assert response.status_code == 200, f"{response.status_code}: {response.content[:200]!r}"

    # -- create ----------------------------------------------------------------

    def test_create_is_idempotent(self) -> None:
        """The same idempotency key never makes a second provider object."""
        with self.contract_intercept("create_payment", lambda result: None) as keys:
            payment = self.contract_create()
        assert payment.status == "pending", payment.status
        assert payment.provider_payment_id, "the payment is not linked to the provider's object"
        assert payment.client_data, "create_payment gave the front end nothing to pay with"
        again = self.contract_provider().create_payment(payment, idempotency_key=keys[0])
        assert again.provider_payment_id == payment.provider_payment_id, (
            f"the same key made {again.provider_payment_id}, not {payment.provider_payment_id}"
        )
        objects = self.fake.payment_objects(payment)
        assert objects == [payment.provider_payment_id], objects

    def test_lost_create_answer_then_sync(self) -> None:
        from django_paygate import services

        self.contract_lose("create", self.contract_create)
        from django_paygate.models import get_payment_model

        payment = get_payment_model().objects.get(provider=self.provider_alias)
        assert payment.status == "pending", payment.status
        assert not payment.provider_payment_id, "linked to an answer that was lost"
        payment = services.sync_payment(payment)
        assert payment.provider_payment_id, "sync did not link the provider's object"
        objects = self.fake.payment_objects(payment)
        assert objects == [payment.provider_payment_id], f"provider objects: {objects}"
        paid = services.confirm_payment(payment, **self.fake.confirm_data(payment))
        assert paid.status == "succeeded", paid.status

    # -- confirm ---------------------------------------------------------------

    def test_lost_confirm_answer_then_sync(self) -> None:
        from django_paygate import services

        payment = self.contract_create()
        self.contract_lose(
            "confirm", lambda: services.confirm_payment(payment, **self.fake.confirm_data(payment))
        )
        assert self.contract_refresh(payment).status != "succeeded"
        payment = services.sync_payment(payment)
        assert payment.status == "succeeded", payment.status
        assert payment.amount_captured == self.amount, payment.amount_captured
        assert self.contract_owed(payment, "payment_succeeded") == 1
        assert services.sync_payment(payment).status == "succeeded"
        assert self.contract_moves(payment, "succeeded") == 1

    def test_decline_then_retry(self) -> None:
        """A decline fails the payment (not for good): the customer may pay again."""
        from django_paygate import services
        from django_paygate.exceptions import PaymentDeclined

        payment = self.contract_create()
        self.fake.decline_next()
        declined = self.contract_raises(
            PaymentDeclined,
            lambda: services.confirm_payment(payment, **self.fake.confirm_data(payment)),
            "a declined confirmation",
        )
        assert declined.decline_code, "a decline carries the provider's code"
        failed = self.contract_refresh(payment)
        assert failed.status == "failed", failed.status
        assert failed.failure_code, "the failure code was not stored"
        assert failed.amount_captured == 0
        paid = services.confirm_payment(failed, **self.fake.confirm_data(failed))
        assert paid.status == "succeeded", paid.status
        assert paid.failure_code == "", paid.failure_code

    # -- capture ---------------------------------------------------------------

    def contract_authorized(self) -> AbstractPayment:
        from django_paygate import services

        if not self.supports_capture:
            raise unittest.SkipTest(f"{self.provider_alias} declares no separate capture")
        payment = self.contract_create(capture=False)
        payment = services.confirm_payment(payment, **self.fake.confirm_data(payment))
        assert payment.status == "authorized", payment.status
        assert payment.amount_captured == 0, payment.amount_captured
        return payment

    def test_capture(self) -> None:
        from django_paygate import services

        payment = services.capture_payment(self.contract_authorized())
        assert payment.status == "succeeded", payment.status
        assert payment.amount_captured == self.amount, payment.amount_captured
        assert self.contract_owed(payment, "payment_succeeded") == 1

    def test_partial_capture_is_captured_or_refused(self) -> None:
        from django_paygate import services
        from django_paygate.exceptions import PaygateError

        payment = self.contract_authorized()
        part = self.amount // 2
        if self.supports_partial_capture:
            payment = services.capture_payment(payment, amount=part)
            assert payment.status == "succeeded", payment.status
            assert payment.amount_captured == part, payment.amount_captured
            return
        self.contract_raises(
            PaygateError,
            lambda: services.capture_payment(payment, amount=part),
            "a partial capture that was not captured",
        )
        payment = self.contract_refresh(payment)
        assert (payment.status, payment.amount_captured) == ("authorized", 0)

    def test_lost_capture_answer_then_sync(self) -> None:
        from django_paygate import services

        payment = self.contract_authorized()
        self.contract_lose("capture", lambda: services.capture_payment(payment))
        payment = services.sync_payment(payment)
        assert payment.status == "succeeded", payment.status
        assert payment.amount_captured == self.amount, payment.amount_captured

    # -- refunds ---------------------------------------------------------------

    def test_partial_and_repeated_refunds(self) -> None:
        from django_paygate import services
        from django_paygate.exceptions import RefundExceedsCaptured

        payment = self.contract_paid()
        third = self.amount // 3
        first = services.refund_payment(payment, amount=third, idempotency_key="contract-1")
        assert first.status == "succeeded", first.status
        assert first.provider_refund_id, "the refund has no provider refund id"
        again = services.refund_payment(payment, amount=third, idempotency_key="contract-1")
        assert again.pk == first.pk, "a repeated refund made a new one"
        assert again.replayed, "a repeated refund is not marked replayed"
        self.contract_assert_refunded(payment, third)
        second = services.refund_payment(payment, amount=third)
        assert second.provider_refund_id not in ("", None, first.provider_refund_id)
        self.contract_assert_refunded(payment, 2 * third)
        self.contract_raises(
            RefundExceedsCaptured,
            lambda: services.refund_payment(payment, amount=self.amount),
            "a refund of more than is left",
        )
        services.refund_payment(payment)  # all that is left
        self.contract_assert_refunded(payment, self.amount)
        assert len(self.fake.refund_objects(payment)) == 3
        payment = services.sync_payment(payment)
        self.contract_assert_refunded(payment, self.amount)

    def test_lost_refund_answer_then_sync(self) -> None:
        from django_paygate import services

        payment = self.contract_lost_refund()
        (pending,) = self.contract_refunds(payment)
        assert pending.status == "pending", pending.status
        services.sync_payment(payment)
        self.contract_assert_refunded(payment, self.amount // 3)

    def contract_refund_overtaken(self, amount: int | None) -> None:
        """``refund_payment`` whose refund webhook arrives before the provider's answer."""
        from django_paygate import services

        payment = self.contract_paid()
        answers: list[HttpResponse] = []

        def webhook_first(result: Any) -> None:
            event = self.fake.signed_event(
                REFUND_SUCCEEDED, payment, refund_id=result.provider_refund_id
            )
            answers.append(self.contract_post(event))

        with self.contract_intercept("refund_payment", webhook_first):
            refund = services.refund_payment(payment, amount=amount)
        (answer,) = answers
        self.contract_ok(answer)
        assert refund.status == "succeeded", refund.status
        refunded = self.amount if amount is None else amount
        self.contract_assert_refunded(payment, refunded)
        payment = services.sync_payment(payment)
        self.contract_assert_refunded(payment, refunded)
        if amount is not None:  # nothing is held: the rest can still be refunded
            services.refund_payment(payment)
            self.contract_assert_refunded(payment, self.amount)

    def test_refund_overtaken_by_its_webhook(self) -> None:
        self.contract_refund_overtaken(self.amount // 3)

    def test_full_refund_overtaken_by_its_webhook(self) -> None:
        self.contract_refund_overtaken(None)

    def test_refund_webhook_after_lost_answer(self) -> None:
        """The webhook of a refund whose answer was lost settles it; sync then agrees."""
        from django_paygate import services

        payment = self.contract_lost_refund()
        (made,) = self.fake.refund_objects(payment)
        self.contract_ok(
            self.contract_post(self.fake.signed_event(REFUND_SUCCEEDED, payment, refund_id=made))
        )
        self.contract_assert_refunded(payment, self.amount // 3)
        services.sync_payment(payment)
        self.contract_assert_refunded(payment, self.amount // 3)

    # -- webhooks --------------------------------------------------------------

    def contract_rejected(self, payment: AbstractPayment, delivery: Delivery) -> None:
        from django_paygate.models import WebhookEvent

        before = WebhookEvent.objects.count()
        response = self.contract_post(delivery)
        assert response.status_code == 400, f"{response.status_code}: {response.content[:200]!r}"
        assert WebhookEvent.objects.count() == before, "a rejected delivery was stored"
        assert self.contract_refresh(payment).status == "pending"

    def test_webhook_moves_the_payment(self) -> None:
        payment = self.contract_create()
        self.contract_ok(self.contract_post(self.fake.signed_event(PAYMENT_SUCCEEDED, payment)))
        payment = self.contract_refresh(payment)
        assert payment.status == "succeeded", payment.status
        assert payment.amount_captured == self.amount, payment.amount_captured

    def test_bad_signature(self) -> None:
        payment = self.contract_create()
        body, headers = self.fake.signed_event(PAYMENT_SUCCEEDED, payment)
        self.contract_rejected(payment, (body + b"\n", headers))  # the body changed
        wrong = self.fake.signed_event(PAYMENT_SUCCEEDED, payment, secret=WRONG_SECRET)
        self.contract_rejected(payment, wrong)

    def test_missing_signature(self) -> None:
        assert self.signature_headers, "name the signature header(s) in signature_headers"
        payment = self.contract_create()
        body, headers = self.fake.signed_event(PAYMENT_SUCCEEDED, payment)
        names = {h.lower() for h in self.signature_headers}
        assert names & {h.lower() for h in headers}, f"no {self.signature_headers} in {headers}"
        unsigned = {k: v for k, v in headers.items() if k.lower() not in names}
        self.contract_rejected(payment, (body, unsigned))
        self.contract_rejected(payment, (body, {**unsigned, self.signature_headers[0]: ""}))

    def test_rotated_secret(self) -> None:
        """During a rotation both the new and the old secret verify; others still fail."""
        from django.conf import settings
        from django.test import override_settings

        payment = self.contract_create()
        old = self.contract_provider().webhook_secrets()
        assert old, f"{self.provider_alias} has no webhook secret configured"
        paygate: dict[str, Any] = copy.deepcopy(settings.PAYGATE)
        options = paygate["PROVIDERS"][self.provider_alias].setdefault("OPTIONS", {})
        options[self.webhook_secret_option] = [ROTATED_SECRET, *old]
        with override_settings(PAYGATE=paygate):
            self.contract_rejected(
                payment, self.fake.signed_event(PAYMENT_SUCCEEDED, payment, secret=WRONG_SECRET)
            )
            self.contract_ok(
                self.contract_post(self.fake.signed_event(IGNORED, payment, secret=old[0]))
            )
            new = self.fake.signed_event(PAYMENT_SUCCEEDED, payment, secret=ROTATED_SECRET)
            self.contract_ok(self.contract_post(new))
        assert self.contract_refresh(payment).status == "succeeded"

    def test_header_names_in_any_case(self) -> None:
        from django_paygate.webhooks import receive_webhook

        payment = self.contract_create()
        body, headers = self.fake.signed_event(PAYMENT_SUCCEEDED, payment)
        lower = {k.lower(): v for k, v in headers.items()}
        result = receive_webhook(self.provider_alias, body, lower)
        assert (result.status_code, result.outcome) == (200, "processed"), result
        upper = {k.upper(): v for k, v in headers.items()}
        result = receive_webhook(self.provider_alias, body, upper)
        assert (result.status_code, result.outcome) == (200, "duplicate"), result
        assert self.contract_refresh(payment).status == "succeeded"

    def test_ignored_event_type(self) -> None:
        from django_paygate.models import WebhookEvent

        payment = self.contract_create()
        self.contract_ok(self.contract_post(self.fake.signed_event(IGNORED, payment)))
        (row,) = WebhookEvent.objects.filter(provider=self.provider_alias)
        assert row.status == "ignored", row.status
        assert self.contract_refresh(payment).status == "pending"

    def test_duplicate_delivery(self) -> None:
        from django_paygate.models import WebhookEvent

        payment = self.contract_create()
        delivery = self.fake.signed_event(PAYMENT_SUCCEEDED, payment)
        self.contract_ok(self.contract_post(delivery))
        self.contract_ok(self.contract_post(delivery))
        (row,) = WebhookEvent.objects.filter(provider=self.provider_alias)
        assert row.status == "processed", row.status
        payment = self.contract_refresh(payment)
        assert payment.status == "succeeded", payment.status
        assert self.contract_moves(payment, "succeeded") == 1
        assert self.contract_owed(payment, "payment_succeeded") == 1


__all__ = [
    "IGNORED",
    "OPERATIONS",
    "PAYMENT_SUCCEEDED",
    "REFUND_SUCCEEDED",
    "ROTATED_SECRET",
    "WRONG_SECRET",
    "Delivery",
    "ProviderContract",
    "ProviderFake",
]
