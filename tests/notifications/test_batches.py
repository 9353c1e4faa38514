"""The outbox worker's batches: one claim for several rows, one mark per email.

What a batch costs in statements, how its lease covers every row it holds, what it gives
back, and what it shares between its emails (the settings, one backend connection, the
compiled templates). Concurrency is in test_concurrency.py (PostgreSQL, real threads).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from io import StringIO
from typing import Any, ClassVar

import pytest
from anymail.backends.test import EmailBackend as AnymailTestBackend
from django.core.management import call_command
from django.db import connection
from django.template import engines
from django.template.base import Template
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_paygate import emails, notifications, signals
from django_paygate.models import Notification
from tests.conftest import on_postgres, pinned
from tests.notifications.backends import FlakyBackend
from tests.notifications.conftest import set_paygate, use_email_backend
from tests.notifications.factories import make_notification

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.filterwarnings("error")]

COUNTING_BACKEND = f"{__name__}.CountingBackend"


class CountingBackend(AnymailTestBackend):
    """anymail's test backend that counts its instances and the connections they open and
    close; like SMTP's, ``open()`` says whether it opened one (``send_messages`` then
    closes it again)."""

    made: ClassVar[int] = 0
    opened: ClassVar[int] = 0
    closed: ClassVar[int] = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connected = False
        CountingBackend.made += 1

    def open(self) -> bool:
        if self.connected:
            return False
        self.connected = True
        CountingBackend.opened += 1
        return True

    def close(self) -> None:
        if self.connected:
            self.connected = False
            CountingBackend.closed += 1


@pytest.fixture
def counting(settings: Any, outbox: list[Any]) -> type[CountingBackend]:
    use_email_backend(settings, COUNTING_BACKEND)
    CountingBackend.made = CountingBackend.opened = CountingBackend.closed = 0
    return CountingBackend


def _rows(count: int, kind: str = "payment_succeeded") -> list[int]:
    return [make_notification(kind).pk for _ in range(count)]


def _statuses(ids: Sequence[int]) -> list[tuple[str, int]]:
    rows = Notification.objects.filter(pk__in=ids).order_by("pk")
    return list(rows.values_list("status", "attempts"))


def _drain(*args: str) -> str:
    out = StringIO()
    call_command("paygate_send_notifications", *args, stdout=out)
    return out.getvalue()


def test_a_batch_claim_is_one_statement_and_takes_the_oldest_n_due_rows(
    django_assert_num_queries: Any,
) -> None:
    ids = _rows(5)
    Notification.objects.filter(pk=ids[0]).update(status="sent")

    # SQLite: the due ids, then one conditional claim per row and the read, in a
    # transaction (BEGIN, COMMIT). MariaDB: BEGIN, lock the ids, claim them, read, COMMIT.
    with django_assert_num_queries(pinned(postgresql=1, other=6, mysql=5)):
        batch = notifications.claim_batch(2)

    assert batch.ids() == ids[1:3]
    assert _statuses(ids) == [("sent", 0), ("sending", 1), ("sending", 1)] + [("pending", 0)] * 2
    claimed = [notifications._from_row(row) for row in batch.rows]
    assert [(n.pk, n.status, n.attempts) for n in claimed] == [
        (ids[1], "sending", 1),
        (ids[2], "sending", 1),
    ]
    assert all(n.payment.pk and n.payment.email for n in claimed)  # read with the claim
    assert notifications.claim_batch(10, after=ids[3]).ids() == [ids[4]]
    assert notifications.claim_batch(10).ids() == [ids[3]]
    assert notifications.claim_batch(10).rows == []


def test_a_claim_by_ids_takes_only_the_due_ones_among_them(
    django_assert_num_queries: Any,
) -> None:
    ids = _rows(4)
    Notification.objects.filter(pk=ids[1]).update(status="sent")

    with django_assert_num_queries(pinned(postgresql=1, other=6, mysql=5)):
        batch = notifications.claim_batch(ids=[ids[2], ids[1], ids[0], ids[2]])

    assert batch.ids() == [ids[0], ids[2]]  # oldest first, each once, the sent one left
    assert _statuses(ids) == [("sending", 1), ("sent", 0), ("sending", 1), ("pending", 0)]


def test_the_drain_costs_one_claim_per_batch_and_one_mark_per_row(
    outbox: list[Any], django_assert_num_queries: Any
) -> None:
    """No receivers: per batch one claim (on PostgreSQL one statement), per row one mark,
    and a last claim that finds nothing."""
    ids = _rows(5)

    # Batches of 2, 2, 1, then a claim that finds nothing. PostgreSQL: each claim is one
    # statement. SQLite: the due ids, BEGIN, a claim per row, the read, COMMIT (one row:
    # the due id, its claim, the read; none: the due ids). MariaDB: BEGIN, lock the ids,
    # claim, read, COMMIT (none: BEGIN, lock, COMMIT). Then one mark per row.
    with django_assert_num_queries(
        pinned(postgresql=3 + 1 + 5, other=(6 + 6 + 3) + 1 + 5, mysql=3 * 5 + 3 + 5)
    ):
        assert notifications.drain(size=2) == {"sent": 5, "failed": 0, "skipped": 0}

    assert sorted(int(m.metadata["notification_id"]) for m in outbox) == ids
    assert _statuses(ids) == [("sent", 1)] * 5


def test_with_a_receiver_each_row_adds_the_record_of_its_signal(
    outbox: list[Any], signal_spy: Any
) -> None:
    ids = _rows(3)

    with CaptureQueriesContext(connection) as captured:
        notifications.drain(size=3)

    updates = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("UPDATE")]
    marks = [q for q in updates if "'sent'" in q]
    records = [q for q in updates if "'sent'" not in q and "signal_sent" in q]
    assert (len(marks), len(records)) == (3, 3)
    assert signal_spy.count("payment_succeeded") == 3
    assert len(outbox) == 3
    assert _statuses(ids) == [("sent", 1)] * 3


def test_a_task_delivers_its_ids_in_batches(
    outbox: list[Any], settings: Any, django_assert_num_queries: Any
) -> None:
    set_paygate(settings, NOTIFICATION_BATCH_SIZE=2)
    ids = _rows(3)

    # Two claims (ids 1-2, then 3 and the repeat), three marks. SQLite and MariaDB: each
    # claim is BEGIN, two claims or a lock and a claim, the read, COMMIT.
    with django_assert_num_queries(pinned(postgresql=2 + 3, other=2 * 5 + 3)):
        counts = notifications.deliver([*ids, ids[0]])

    assert counts == {"sent": 3, "failed": 0, "skipped": 1}  # the repeated id
    assert _statuses(ids) == [("sent", 1)] * 3


def test_a_single_row_costs_what_it_did(django_assert_num_queries: Any) -> None:
    """One row: claim and read in one statement on PostgreSQL, claim then read elsewhere;
    no transaction around them."""
    [pk] = _rows(1, "payment_canceled")

    with django_assert_num_queries(pinned(postgresql=2, other=3)):
        assert notifications.deliver([pk]) == {"sent": 1, "failed": 0, "skipped": 0}


def test_a_batch_is_held_for_twice_the_lease_and_a_single_row_for_one(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_paygate(settings, NOTIFICATION_LEASE=90)
    first, second, alone = _rows(3)
    now = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: now)

    batch = notifications.claim_batch(2)
    single = notifications.claim_batch(ids=[alone])

    assert batch.ids() == [first, second]
    assert batch.start_by == now + timedelta(seconds=90)
    assert single.start_by == now
    leases = dict(Notification.objects.values_list("pk", "next_attempt_at"))
    assert leases == {
        first: now + timedelta(seconds=180),
        second: now + timedelta(seconds=180),
        alone: now + timedelta(seconds=90),
    }


def test_rows_not_started_within_the_lease_are_given_back_and_delivered_next(
    outbox: list[Any], settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first email takes longer than the lease: the rest of the batch is given back
    unstarted (pending, attempt uncounted) and the next claim delivers it."""
    set_paygate(settings, NOTIFICATION_LEASE=60)
    ids = _rows(3)
    start = timezone.now()
    clock = [start]
    monkeypatch.setattr(timezone, "now", lambda: clock[0])
    given_back: list[list[tuple[str, int]]] = []
    sent = emails.EmailBatch.send

    def slow_send(self: emails.EmailBatch, message: Any) -> int:
        if not given_back:  # the first email: the mail server takes 61 seconds
            clock[0] = start + timedelta(seconds=61)
            given_back.append([])
        return sent(self, message)

    monkeypatch.setattr(emails.EmailBatch, "send", slow_send)
    batch = notifications.claim_batch(3)
    counts, released, last = notifications._deliver_batch(batch)

    assert (counts, released, last) == ({"sent": 1, "failed": 0, "skipped": 0}, ids[1:], ids[0])
    assert _statuses(ids) == [("sent", 1), ("pending", 0), ("pending", 0)]
    assert Notification.objects.get(pk=ids[1]).next_attempt_at is None  # due at once
    assert [int(m.metadata["notification_id"]) for m in outbox] == ids[:1]

    assert "Sent 2, failed 0, skipped 0" in _drain()
    assert sorted(int(m.metadata["notification_id"]) for m in outbox) == ids
    assert _statuses(ids) == [("sent", 1)] * 3


def test_the_drain_claims_again_what_a_batch_gave_back(
    outbox: list[Any], settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In one pass: rows given back come in the next batch (the pass resumes after the last
    row started), each once."""
    set_paygate(settings, NOTIFICATION_LEASE=60)
    ids = _rows(4)
    clock = [timezone.now()]
    monkeypatch.setattr(timezone, "now", lambda: clock[0])
    sent = emails.EmailBatch.send

    def slow_send(self: emails.EmailBatch, message: Any) -> int:
        clock[0] += timedelta(seconds=61)  # every email outlasts the lease
        return sent(self, message)

    monkeypatch.setattr(emails.EmailBatch, "send", slow_send)

    assert notifications.drain(size=4) == {"sent": 4, "failed": 0, "skipped": 0}
    assert [int(m.metadata["notification_id"]) for m in outbox] == ids  # one per batch
    assert _statuses(ids) == [("sent", 1)] * 4


def test_an_interrupted_worker_gives_back_the_rows_it_did_not_start(
    outbox: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _rows(3)
    sent = emails.EmailBatch.send

    def interrupted(self: emails.EmailBatch, message: Any) -> int:
        if outbox:
            raise KeyboardInterrupt  # Ctrl-C during the second email
        return sent(self, message)

    monkeypatch.setattr(emails.EmailBatch, "send", interrupted)

    assert "Stopped." in _drain("--loop")

    # The first is sent, the second was in flight (its lease runs out), the third is back.
    assert _statuses(ids) == [("sent", 1), ("sending", 1), ("pending", 0)]
    assert len(outbox) == 1


def test_a_row_taken_over_is_not_given_back(outbox: list[Any]) -> None:
    """Giving back is conditional on the claim, like every update after it."""
    first, second = _rows(2)
    batch = notifications.claim_batch(2)
    Notification.objects.filter(pk=second).update(attempts=2)  # another worker's claim now

    assert notifications._give_back(batch.rows) == [first]
    assert _statuses([first, second]) == [("pending", 0), ("sending", 2)]


def test_one_email_connection_and_one_read_of_the_settings_per_batch(
    counting: type[CountingBackend], outbox: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _rows(5)
    reads: list[int] = []
    read = emails.get_email_settings

    def counted() -> emails.EmailSettings:
        reads.append(1)
        return read()

    monkeypatch.setattr(emails, "get_email_settings", counted)

    assert notifications.drain(size=2)["sent"] == 5

    assert (counting.made, counting.opened, counting.closed) == (3, 3, 3)  # batches 2, 2, 1
    assert len(reads) == 3
    assert len(outbox) == 5


def test_a_failed_send_closes_the_connection_and_the_next_email_opens_one(
    flaky: type[FlakyBackend], outbox: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _rows(3)
    flaky.reset(failures=1)
    closed: list[int] = []
    close = FlakyBackend.close

    def counted_close(self: FlakyBackend) -> None:
        closed.append(id(self))
        close(self)

    monkeypatch.setattr(FlakyBackend, "close", counted_close, raising=False)

    assert notifications.drain(size=3) == {"sent": 2, "failed": 1, "skipped": 0}

    assert len(closed) == 2  # the failed one, then the batch's
    assert closed[0] != closed[1]
    assert _statuses(ids) == [("pending", 1), ("sent", 1), ("sent", 1)]
    assert flaky.calls == 3


def test_signal_only_rows_need_no_email_settings_nor_connection(
    counting: type[CountingBackend], settings: Any, signal_spy: Any
) -> None:
    set_paygate(settings, EMAILS={"KINDS": {"nonsense": True}})  # would not validate
    _rows(3, "payment_canceled")

    assert notifications.drain()["sent"] == 3
    assert counting.made == 0
    assert signal_spy.count("payment_canceled") == 3


def test_the_email_templates_are_compiled_once_per_process(
    outbox: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Django's cached template loader (its default since 4.1, with DEBUG too, when
    ``TEMPLATES`` names no loaders, as here and in a new project) keeps them compiled."""
    engine = engines["django"].engine  # type: ignore[attr-defined]
    [loader] = engine.template_loaders
    assert type(loader).__module__ == "django.template.loaders.cached"
    loader.reset()
    compiled: list[str] = []
    compile_nodelist = Template.compile_nodelist

    def counted(self: Template) -> Any:
        compiled.append(self.origin.template_name)
        return compile_nodelist(self)

    monkeypatch.setattr(Template, "compile_nodelist", counted)
    _rows(3)

    notifications.drain(size=1)  # three batches

    assert len(outbox) == 3
    assert sorted(compiled) == sorted(
        [
            "paygate/emails/payment_success.subject.txt",
            "paygate/emails/payment_success.txt",
            "paygate/emails/payment_success.html",
            "paygate/emails/base.html",
            "paygate/emails/_row.html",
        ]
    )


def test_the_mark_waits_for_the_disk_unless_told_otherwise(
    outbox: list[Any], settings: Any
) -> None:
    rows = _rows(2)

    with CaptureQueriesContext(connection) as durable:
        notifications.deliver(rows[:1])
    set_paygate(settings, NOTIFICATION_SYNC_COMMIT=False)
    with CaptureQueriesContext(connection) as quick:
        notifications.deliver(rows[1:])

    def marks(captured: CaptureQueriesContext) -> list[str]:
        return [q["sql"] for q in captured.captured_queries if "'sent'" in q["sql"]]

    [durable_mark], [quick_mark] = marks(durable), marks(quick)
    assert "synchronous_commit" not in durable_mark
    assert ("synchronous_commit" in quick_mark) is on_postgres()  # elsewhere: ignored
    assert _statuses(rows) == [("sent", 1)] * 2


def test_the_quick_mark_is_not_used_inside_a_callers_transaction(settings: Any) -> None:
    from django.db import transaction

    set_paygate(settings, NOTIFICATION_SYNC_COMMIT=False)
    with transaction.atomic():
        assert notifications._sent_statement() == notifications.sql.outbox().sent
    expected = notifications.sql.outbox().sent_async if on_postgres() else None
    assert notifications._sent_statement() == (expected or notifications.sql.outbox().sent)


@pytest.mark.postgres
def test_the_quick_mark_turns_synchronous_commit_off_for_its_own_transaction_only() -> None:
    row = make_notification("payment_succeeded")
    assert notifications.claim(row.pk)
    statement = notifications.sql.outbox().sent_async
    assert statement is not None
    params = ["sent", True, timezone.now(), "", row.pk, "sending", 1]
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO on")  # the test database runs with off
        try:
            cursor.execute(f"{statement} RETURNING current_setting('synchronous_commit')", params)
            assert cursor.fetchall() == [("off",)]
            cursor.execute("SELECT current_setting('synchronous_commit')")
            assert cursor.fetchone() == ("on",)  # the session's next transaction: durable
        finally:
            cursor.execute("RESET synchronous_commit")
    assert _statuses([row.pk]) == [("sent", 1)]


@pytest.mark.parametrize("size", ["0", "1001"])
def test_the_batch_size_option_is_checked(size: str) -> None:
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="--batch-size"):
        _drain("--batch-size", size)


def test_the_batch_size_option_and_setting(
    outbox: list[Any], settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _rows(3)
    sizes: list[int | None] = []
    claim_batch = notifications.claim_batch

    def recorded(size: int | None = None, **kwargs: Any) -> notifications.Batch:
        sizes.append(size)
        return claim_batch(size, **kwargs)

    monkeypatch.setattr(notifications, "claim_batch", recorded)
    set_paygate(settings, NOTIFICATION_BATCH_SIZE=1)

    _drain("--limit", "2")
    assert (sizes, len(outbox)) == ([1, 1], 2)
    _drain("--batch-size", "5")
    assert (sizes[2:], len(outbox)) == ([5, 5], 3)  # the last row, then nothing


def test_signals_for_a_batch_are_sent_in_id_order(outbox: list[Any]) -> None:
    ids = _rows(3)
    seen: list[int] = []

    def receiver(sender: Any, payment: Any, **kwargs: Any) -> None:
        seen.append(payment.pk)

    signals.payment_succeeded.connect(receiver)
    try:
        notifications.drain()
    finally:
        signals.payment_succeeded.disconnect(receiver)

    assert seen == [Notification.objects.get(pk=pk).payment_id for pk in ids]
