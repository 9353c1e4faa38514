"""The hot path's hand-built statements write and read rows exactly as the ORM would."""

from __future__ import annotations

import uuid

import pytest
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext

from django_paygate import sql
from django_paygate.models import Notification, PaymentEvent, Refund, get_payment_model
from tests.conftest import count_data_statements, pinned
from tests.factories import PaymentFactory

pytestmark = pytest.mark.django_db


def test_insert_fills_defaults_and_timestamps_as_save_would() -> None:
    payment = PaymentFactory()
    [pk] = sql.execute(sql.insert(Notification, kind="payment_succeeded", payment=payment))
    row = Notification.objects.get(pk=pk)
    assert (row.status, row.attempts, row.signal_sent, row.last_error) == ("pending", 0, False, "")
    assert row.payment_id == payment.pk
    assert row.created_at is not None


def test_insert_of_a_model_with_a_uuid_key_returns_that_key() -> None:
    payment = PaymentFactory(status="succeeded", amount_captured=1000)
    key = uuid.uuid4()
    write = sql.insert(
        Refund, id=key, payment=payment, amount=100, currency="USD", idempotency_key="k1"
    )
    assert sql.execute(write) == [key]
    assert Refund.objects.get(pk=key).amount == 100


def _columns(row: object, *skip: str) -> dict[str, object]:
    meta = type(row)._meta  # type: ignore[attr-defined]
    return {f.attname: getattr(row, f.attname) for f in meta.concrete_fields if f.name not in skip}


def test_insert_writes_the_row_that_create_writes() -> None:
    payment = PaymentFactory()
    values = {"payment": payment, "source": "webhook", "from_status": "pending", "amount": 7}
    [pk] = sql.execute(sql.insert(PaymentEvent, **values, to_status="succeeded", note="n"))
    made = PaymentEvent.objects.create(**values, to_status="succeeded", note="n")
    written = PaymentEvent.objects.get(pk=pk)
    assert _columns(written, "id", "created_at") == _columns(made, "id", "created_at")
    assert written.created_at is not None


def test_insert_takes_a_related_row_or_its_key_and_none_as_null() -> None:
    payment = PaymentFactory()
    by_row, by_key = sql.execute(
        sql.insert(Notification, kind="payment_failed", payment=payment, refund=None),
        sql.insert(Notification, kind="payment_failed", payment_id=payment.pk),
    )
    rows = Notification.objects.filter(pk__in=[by_row, by_key])
    assert [(n.payment_id, n.refund_id) for n in rows] == [(payment.pk, None)] * 2


def test_insert_refuses_a_name_that_is_not_a_field() -> None:
    with pytest.raises(TypeError, match="no field named colour"):
        sql.insert(Notification, kind="payment_failed", colour="red")


def test_update_writes_only_the_named_fields_and_refreshes_auto_now() -> None:
    payment = PaymentFactory(description="before")
    stamp = payment.updated_at
    payment.status = "processing"
    payment.description = "not saved"
    sql.execute(sql.update(payment, ["status", "updated_at"]))
    payment.refresh_from_db()
    assert (payment.status, payment.description) == ("processing", "before")
    assert payment.updated_at > stamp


def test_an_update_that_finds_no_row_raises() -> None:
    ghost = get_payment_model()(pk=uuid.uuid4(), amount=1, currency="USD")
    with pytest.raises(DatabaseError, match="not found"):
        sql.execute(sql.update(ghost, ["status"]))


def test_several_writes_return_their_keys_in_order_in_one_round_trip_on_postgresql() -> None:
    payment = PaymentFactory()
    payment.status = "processing"
    writes = [
        sql.update(payment, ["status"]),
        sql.insert(PaymentEvent, payment=payment, source="api", note="one"),
        sql.insert(Notification, kind="payment_failed", payment=payment),
    ]
    with CaptureQueriesContext(connection) as captured:
        keys = sql.execute(*writes)
    assert count_data_statements(captured) == pinned(postgresql=1, other=3)
    assert keys[0] == payment.pk
    assert PaymentEvent.objects.get(pk=keys[1]).note == "one"
    assert Notification.objects.get(pk=keys[2]).kind == "payment_failed"


def test_a_failing_write_in_a_batch_leaves_nothing_behind() -> None:
    payment = PaymentFactory(amount=1000)
    payment.amount_captured = 2000  # the database refuses a capture above the amount
    with pytest.raises(DatabaseError), transaction.atomic():
        sql.execute(
            sql.insert(PaymentEvent, payment=payment, source="api", note="never"),
            sql.update(payment, ["amount_captured"]),
        )
    assert not PaymentEvent.objects.filter(note="never").exists()


def test_fetch_for_update_builds_the_same_instance_as_the_orm() -> None:
    payment = PaymentFactory(metadata={"order": 7}, provider_data={"charge": "ch_1"})
    with transaction.atomic():
        fetched = sql.fetch_for_update(get_payment_model(), payment.pk)
    expected = get_payment_model().objects.get(pk=payment.pk)
    for field in expected._meta.concrete_fields:
        assert getattr(fetched, field.attname) == getattr(expected, field.attname), field.name
    assert fetched._state.adding is False
    assert fetched.metadata == {"order": 7}


def test_fetch_for_update_of_a_missing_row_raises_does_not_exist() -> None:
    Payment = get_payment_model()
    with pytest.raises(Payment.DoesNotExist):
        sql.fetch_for_update(Payment, uuid.uuid4())


def test_an_update_names_columns_only() -> None:
    payment = PaymentFactory()
    with pytest.raises(TypeError, match="not a column"):
        sql.update(payment, ["refunds"])
