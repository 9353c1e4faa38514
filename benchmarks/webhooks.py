"""Throughput of the webhook path, side by side with what it cannot beat.

    pip install -e ".[bench]"   # gunicorn, and the test extras
    python benchmarks/webhooks.py [--requests 2000] [--threads 8] [--workers 2]
                                  [--rounds 3] [--prepared] [--profile]

Creates a throwaway PostgreSQL database (127.0.0.1:5432, user postgres; see
``--pg-*``), migrates it, starts gunicorn on 127.0.0.1 serving this module, and
drives each endpoint with the same bounded load (a fixed number of requests
from a pool of threads using ``http.client``, one connection per request):

(a) a view that only verifies the dummy provider's signature (Stripe's scheme:
    HMAC-SHA256 over ``t.body``) and answers 200;
(b) the floor of a durable handler: verify, ``INSERT … ON CONFLICT DO NOTHING``
    into an inbox table, one ``UPDATE`` of the payment, in one transaction;
(b+) the rows the design asks for, written by hand into django-paygate's own
    tables with the SQL django-paygate runs (one statement locks the payment and
    inserts the inbox row, a second updates the payment and inserts its audit and
    outbox rows), with no framework around it: what any implementation of the
    design pays in the database, and the ceiling for django-paygate;
(c) django-paygate's ``POST webhooks/dummy/`` with unique ``payment.succeeded``
    events for existing pending payments, as shipped: the default (immediate)
    task backend delivers the outbox (post-commit signal, email) inside the
    request;
(c') the same with the outbox left to its worker (``PAYGATE["TASK_BACKEND"] =
    None``: nothing is enqueued, ``paygate_send_notifications --loop`` delivers);
(d) that worker: ``paygate_send_notifications`` in this process delivers what (c')
    left in the outbox (signal and email of each row), in notifications/s, as the
    command runs it: in batches of ``NOTIFICATION_BATCH_SIZE`` where the code has
    them, each row marked sent after its own email. (c') only defers this work: a
    site must do (c') and (d), so the script also prints the rate of both run one
    after the other on the same CPUs;
(d') the same worker on a copy of those rows with ``NOTIFICATION_SYNC_COMMIT =
    False`` (the mark's commit does not wait for the WAL flush). Code without the
    setting ignores it: there (d') measures (d) again.

``--profile`` runs only (c), from one instrumented gunicorn worker, and prints where an
event's time goes, by phase (the webhook, the Tasks framework, the claim, the read, the
signal, the email's parts, the mark): Python CPU, the worker's PostgreSQL backend's CPU
and wall time. ``--profile-worker`` does the same for (d): the drain command, in this
process, over ``--requests`` outbox rows after ``--warmup`` (add ``--async-commit`` for
``NOTIFICATION_SYNC_COMMIT = False``).

``--prepared`` runs every scenario with psycopg's server-side binding and
prepared statements (``OPTIONS: {"server_side_binding": True,
"prepare_threshold": 5}``) instead of Django's default client-side binding.

Every scenario runs once per round, on fresh payments, and the rounds run one
after another (``--rounds``, default 3), so a pause of the machine in one round
(a checkpoint, another job) shows as one odd round instead of a wrong result.
It prints events/s for each scenario of each round, then the medians: of the
rates, and of the ratios to the floor taken within each round. Last, the SQL
data statements of a first delivery and of a duplicate. Nothing is timed in the test
suite; this script is where speed is measured. The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import http.client
import io
import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from statistics import median
from typing import Any

HERE = Path(__file__).resolve().parent
ROLE_DB = "PAYGATE_BENCH_DB"  # set for the gunicorn processes only
ROLE_OUTBOX = "PAYGATE_BENCH_OUTBOX"
ROLE_PREPARED = "PAYGATE_BENCH_PREPARED"
ROLE_PROFILE = "PAYGATE_BENCH_PROFILE"
PG = {"host": "127.0.0.1", "port": "5432", "user": "postgres"}

VERIFY_PATH = "/bench/verify/"
FLOOR_PATH = "/bench/floor/"
ROWS_PATH = "/bench/rows/"
PAYGATE_PATH = "/api/payments/webhooks/dummy/"
CPRIME = "(c')"
DRAIN = "(d) the outbox worker drains what (c') left (1 process)"
DRAIN_ASYNC = "(d') the same, NOTIFICATION_SYNC_COMMIT = False"


# ---------------------------------------------------------------------------
# Django settings and the two reference views (used by gunicorn and by main)
# ---------------------------------------------------------------------------


def configure(db_name: str, *, outbox: str = "immediate", prepared: bool = False) -> None:
    from django.conf import settings

    tasks = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}
    options = {"server_side_binding": True, "prepare_threshold": 5} if prepared else {}
    settings.configure(
        DEBUG=False,
        SECRET_KEY="benchmark-only",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        USE_TZ=True,
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "django_paygate"],
        MIDDLEWARE=[],
        TEMPLATES=[
            {"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}
        ],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "HOST": PG["host"],
                "PORT": PG["port"],
                "USER": PG["user"],
                "NAME": db_name,
                "CONN_MAX_AGE": 600,
                "OPTIONS": options,
            }
        },
        PAYGATE={
            "DEFAULT_PROVIDER": "dummy",
            "PROVIDERS": {"dummy": {"BACKEND": "django_paygate.providers.dummy.DummyProvider"}},
            "TASK_BACKEND": None if outbox == "worker" else "default",
        },
        TASKS=tasks,
        **_mail_settings(),
        LOGGING_CONFIG=None,
        SILENCED_SYSTEM_CHECKS=["paygate.W002"],
    )


def _mail_settings() -> dict[str, Any]:
    import django

    backend = "django.core.mail.backends.dummy.EmailBackend"
    if django.VERSION >= (6, 1):
        return {"MAILERS": {"default": {"BACKEND": backend}}}
    return {"EMAIL_BACKEND": backend}


def verify_view(request: Any) -> Any:
    """(a) Verify the signature; nothing else."""
    from django.http import HttpResponse

    from django_paygate.exceptions import WebhookVerificationError
    from django_paygate.providers import get_provider

    try:
        get_provider("dummy").verify_webhook(request.body, request.headers)
    except WebhookVerificationError:
        return HttpResponse(status=400)
    return HttpResponse(b'{"status": "ok"}', content_type="application/json")


def _verified_event(request: Any) -> Any:
    """The request's event, parsed, when the dummy provider's signature holds; else ``None``."""
    from django_paygate.exceptions import WebhookVerificationError
    from django_paygate.providers import get_provider

    try:
        get_provider("dummy").verify_webhook(request.body, request.headers)
    except WebhookVerificationError:
        return None
    return json.loads(request.body)


def floor_view(request: Any) -> Any:
    """(b) The least a durable handler does: verify, insert-once, update the payment."""
    from django.db import connection, transaction
    from django.http import HttpResponse

    event = _verified_event(request)
    if event is None:
        return HttpResponse(status=400)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO bench_inbox (provider, event_id, payload, received_at) "
            "VALUES ('dummy', %s, %s, now()) ON CONFLICT (provider, event_id) DO NOTHING",
            [event["id"], request.body.decode()],
        )
        if cursor.rowcount:
            cursor.execute(
                "UPDATE paygate_payment SET status = 'succeeded', amount_captured = amount, "
                "updated_at = now() WHERE provider = 'dummy' AND provider_payment_id = %s",
                [event["data"]["payment"]["id"]],
            )
    return HttpResponse(b'{"status": "ok"}', content_type="application/json")


_ROWS_CLAIM = (
    "WITH p AS (SELECT id, status FROM paygate_payment WHERE provider = 'dummy' "
    "AND provider_payment_id = %s LIMIT 1 FOR UPDATE), "
    "c AS (INSERT INTO paygate_webhookevent (provider, event_id, type, payload, headers, status, "
    "attempts, error, received_at, processed_at, payment_id) VALUES ('dummy', %s, %s, %s, "
    "'{}'::jsonb, 'processed', 1, '', now(), now(), (SELECT id FROM p)) "
    "ON CONFLICT (provider, event_id) DO NOTHING RETURNING id) "
    "SELECT c.id, p.id, p.status FROM c LEFT JOIN p ON true"
)
_ROWS_WRITE = (
    "WITH u AS (UPDATE paygate_payment SET status = 'succeeded', amount_captured = amount, "
    "succeeded_at = now(), updated_at = now() WHERE id = %s RETURNING id), "
    "a AS (INSERT INTO paygate_paymentevent (payment_id, from_status, to_status, amount, source, "
    "note, webhook_event_id, refund_id, user_id, created_at) VALUES (%s, %s, 'succeeded', %s, "
    "'webhook', '', %s, NULL, NULL, now()) RETURNING id), "
    "o AS (INSERT INTO paygate_notification (kind, payment_id, refund_id, dispute_id, status, "
    "signal_sent, attempts, next_attempt_at, last_error, created_at, sent_at, esp_message_id, "
    "delivery_status, delivery_detail, delivery_updated_at) VALUES ('payment_succeeded', %s, "
    "NULL, NULL, 'pending', false, 0, NULL, '', now(), NULL, '', '', '', NULL) "
    "RETURNING id) SELECT (SELECT id FROM u), (SELECT id FROM a), (SELECT id FROM o)"
)


def rows_view(request: Any) -> Any:
    """(b+) The rows the design asks for, written by hand into django-paygate's own tables.

    Verify; in one statement lock the payment and insert the inbox row (in its
    final state); in a second, update the payment and insert its audit row and
    its outbox row: the SQL django-paygate runs, with no framework around it.
    """
    from django.db import connection, transaction
    from django.http import HttpResponse

    event = _verified_event(request)
    if event is None:
        return HttpResponse(status=400)
    payment = event["data"]["payment"]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            _ROWS_CLAIM, [payment["id"], event["id"], event["type"], request.body.decode()]
        )
        row = cursor.fetchone()
        if row is not None and row[1] is not None and row[2] != "succeeded":
            row_id, payment_id, status = row
            cursor.execute(
                _ROWS_WRITE,
                [payment_id, payment_id, status, payment["amount"], row_id, payment_id],
            )
    return HttpResponse(b'{"status": "ok"}', content_type="application/json")


urlpatterns: list[Any] = []


def _build_urls() -> None:
    from django.urls import include, path
    from django.views.decorators.csrf import csrf_exempt

    urlpatterns[:] = [
        path(VERIFY_PATH.strip("/") + "/", csrf_exempt(verify_view)),
        path(FLOOR_PATH.strip("/") + "/", csrf_exempt(floor_view)),
        path(ROWS_PATH.strip("/") + "/", csrf_exempt(rows_view)),
        path("api/payments/", include("django_paygate.urls")),
    ]


# ---------------------------------------------------------------------------
# --profile: where one in-request delivery spends its time, by phase, under gunicorn
# ---------------------------------------------------------------------------

#: (module, function, phase label). Each phase's figures exclude the phases it calls.
#: The phases of building and sending one email, in both profiles.
EMAIL_PHASES = (
    ("django_paygate.emails", "get_email_settings", "email: read and check settings"),
    ("django_paygate.emails", "render_email", "email: language activation"),
    ("django_paygate.emails", "build_context", "email: build the context"),
    ("django_paygate.emails", "_render_message", "email: build the message"),
    ("django_paygate.emails", "_render", "email: render three templates"),
    ("django_paygate.emails", "send_message", "email: the backend call"),
)
PHASES = (
    ("django_paygate.webhooks", "receive_webhook", "webhook: verify, inbox, apply, commit"),
    ("django_paygate.notifications", "enqueue", "Tasks framework: enqueue and run"),
    ("django_paygate.notifications", "deliver", "delivery loop"),
    ("django_paygate.notifications", "claim", "claim: conditional UPDATE + commit"),
    ("django_paygate.notifications", "_claim_and_read", "claim and read: one statement + commit"),
    ("django_paygate.notifications", "_read_claimed", "read the row claimed with the change"),
    ("django_paygate.notifications", "_load", "load notification, payment, user, refund"),
    ("django_paygate.notifications", "_send_signal", "post-commit signal (send_robust)"),
    ("django_paygate.notifications", "_update", "UPDATE + commit"),
    ("django_paygate.notifications", "send_notification_email", "email: the rest"),
    *EMAIL_PHASES,
)
#: The phases of ``--profile-worker``: the drain command in this process.
WORKER_PHASES = (
    ("django_paygate.notifications", "drain", "the drain: its loop"),
    ("django_paygate.notifications", "claim_batch", "claim a batch: one statement + commit"),
    ("django_paygate.notifications", "_claim_and_read", "claim and read: one statement + commit"),
    ("django_paygate.notifications", "due_ids", "the due ids: one SELECT"),
    ("django_paygate.notifications", "_deliver_batch", "the batch: its loop, the lease check"),
    ("django_paygate.notifications", "deliver", "the delivery loop"),
    ("django_paygate.notifications", "_deliver_claimed", "per row: the instances, bookkeeping"),
    ("django_paygate.notifications", "_send_signal", "post-commit signal (no receivers)"),
    ("django_paygate.notifications", "_update", "UPDATE + commit"),
    ("django_paygate.notifications", "send_notification_email", "email: the rest"),
    *EMAIL_PHASES,
    ("django_paygate.emails", "EmailBatch.send", "email: the backend call"),
)
PROFILE_RESET_PATH = "/bench/profile-reset/"
REQUEST_PHASE = "the rest of the request (gunicorn, Django, view)"


class PhaseProfiler:
    """Exclusive Python CPU, PostgreSQL CPU and wall time by phase, in one worker process.

    PostgreSQL's CPU is the run time of this worker's own backend process
    (``/proc/<pid>/schedstat``, nanoseconds), read at every phase boundary.
    """

    def __init__(self, out: Path) -> None:
        self.out = out
        self.totals: dict[str, list[float]] = {}  # label -> [calls, python, pg, wall]
        self.stack: list[list[Any]] = []
        self.requests = 0
        self.clock = (0.0, 0.0)

    def _pg(self) -> int:
        from django.db import connection

        if connection.connection is None:
            connection.ensure_connection()
        pid = connection.connection.info.backend_pid
        with open(f"/proc/{pid}/schedstat", "rb") as stat:
            return int(stat.read().split()[0])

    def _now(self) -> tuple[int, int, int]:
        return time.thread_time_ns(), self._pg(), time.perf_counter_ns()

    def overhead(self) -> tuple[float, float]:
        """Python CPU and wall time of one reading of the clocks, in nanoseconds."""
        rounds = 2000
        cpu, wall = time.thread_time_ns(), time.perf_counter_ns()
        for _ in range(rounds):
            self._now()
        return (time.thread_time_ns() - cpu) / rounds, (time.perf_counter_ns() - wall) / rounds

    def wrap(self, func: Any, label: str) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            key = label
            if func.__name__ == "_update":  # named by what it records
                parent = self.stack[-1][0] if self.stack else ""
                key = "record signal_sent: " if "signal" in parent else "mark sent: "
                key += label
            frame = [key, self._now(), [0, 0, 0]]
            self.stack.append(frame)
            try:
                return func(*args, **kwargs)
            finally:
                self.stack.pop()
                end = self._now()
                spent = [e - s for e, s in zip(end, frame[1], strict=True)]
                row = self.totals.setdefault(key, [0, 0, 0, 0])
                row[0] += 1
                for i in range(3):
                    row[i + 1] += spent[i] - frame[2][i]
                if self.stack:
                    for i in range(3):
                        self.stack[-1][2][i] += spent[i]

        return timed

    def wsgi(self, app: Any) -> Any:
        def profiled(environ: Any, start_response: Any) -> Any:
            if environ.get("PATH_INFO") == PROFILE_RESET_PATH:  # the warm-up is not counted
                self.totals, self.requests = {}, 0
                start_response("204 No Content", [])
                return []
            response = self.wrap(self._serve, REQUEST_PHASE)(app, environ, start_response)
            if environ.get("PATH_INFO") == PAYGATE_PATH:
                self.requests += 1
                if self.requests % 50 == 0:
                    data = {"requests": self.requests, "totals": self.totals}
                    if self.requests == 50:
                        self.clock = self.overhead()
                    data["clock"] = self.clock
                    self.out.with_suffix(f".{os.getpid()}.json").write_text(json.dumps(data))
            return response

        return profiled

    @staticmethod
    def _serve(app: Any, environ: Any, start_response: Any) -> list[bytes]:
        result = app(environ, start_response)
        try:
            return [b"".join(result)]  # the body, as the server writes it
        finally:
            result.close()  # where the server runs the delivery

    def install(self, phases: tuple[tuple[str, str, str], ...] = PHASES) -> None:
        import importlib

        for module_name, name, label in phases:
            owner: Any = importlib.import_module(module_name)
            *path, attribute = name.split(".")  # "Class.method"
            for part in path:
                owner = getattr(owner, part, None)
            if hasattr(owner, attribute):  # phases of other versions are left out
                setattr(owner, attribute, self.wrap(getattr(owner, attribute), label))


def print_profile(
    out: Path, phases: tuple[tuple[str, str, str], ...] = PHASES, unit: str = "event"
) -> None:
    """Sum the workers' phase figures; print them per event, in microseconds."""
    requests = 0
    rows: dict[str, list[float]] = {}
    clock = (0.0, 0.0)
    for part in out.parent.glob(out.name + ".*.json"):
        data = json.loads(part.read_text())
        requests += data["requests"]
        clock = data["clock"]
        for key, values in data["totals"].items():
            row = rows.setdefault(key, [0, 0, 0, 0])
            for i, value in enumerate(values):
                row[i] += value
    print(f"\nper {unit}, over {requests} {unit}s (exclusive of the phases listed below them)")
    print(f"{'phase':58} {'calls':>5} {'Python us':>9} {'PG us':>7} {'wall us':>8}")
    order = [REQUEST_PHASE] + [label for *_, label in phases]
    keys = sorted(rows, key=lambda k: next(i for i, o in enumerate(order) if k.endswith(o)))
    sums = [0.0, 0.0, 0.0]
    for key in keys:
        calls, python, pg, wall = rows[key]
        sums = [a + b / requests / 1000 for a, b in zip(sums, (python, pg, wall), strict=True)]
        print(
            f"{key:58} {calls / requests:5.1f} {python / requests / 1000:9.0f} "
            f"{pg / requests / 1000:7.0f} {wall / requests / 1000:8.0f}"
        )
    print(f"{'total':58} {'':5} {sums[0]:9.0f} {sums[1]:7.0f} {sums[2]:8.0f}")
    boundaries = 2 * sum(row[0] for row in rows.values()) / requests
    print(
        f"(includes the instrumentation: {boundaries:.0f} clock readings per {unit} at "
        f"{clock[0] / 1000:.0f} us of Python CPU, {clock[1] / 1000:.0f} us wall each)"
    )


if os.environ.get(ROLE_DB):  # imported by gunicorn: this module is the WSGI application
    configure(
        os.environ[ROLE_DB],
        outbox=os.environ.get(ROLE_OUTBOX, "immediate"),
        prepared=bool(os.environ.get(ROLE_PREPARED)),
    )
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
    _build_urls()
    if os.environ.get(ROLE_PROFILE):
        _profiler = PhaseProfiler(Path(os.environ[ROLE_PROFILE]))
        _profiler.install()
        application = _profiler.wsgi(application)


# ---------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _admin_sql(sql: str) -> None:
    import psycopg

    conninfo = psycopg.conninfo.make_conninfo(dbname="postgres", **PG)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.encode())


class Server:
    """gunicorn serving this module on 127.0.0.1."""

    def __init__(
        self, db_name: str, workers: int, outbox: str, prepared: bool, profile: Path | None = None
    ) -> None:
        self.port = _free_port()
        env = {**os.environ, ROLE_DB: db_name, ROLE_OUTBOX: outbox}
        if prepared:
            env[ROLE_PREPARED] = "1"
        if profile is not None:
            env[ROLE_PROFILE] = str(profile)
        env.pop("DJANGO_SETTINGS_MODULE", None)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--chdir",
                str(HERE),
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(workers),
                "--worker-class",
                "sync",
                "--backlog",
                "2048",
                "--log-level",
                "warning",
                f"{Path(__file__).stem}:application",
            ],
            env=env,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("gunicorn exited during start-up")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/api/payments/webhooks/health/")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("gunicorn did not answer in time")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def drive(
    port: int, path: str, deliveries: list[tuple[bytes, dict[str, str]]], threads: int
) -> tuple[float, Counter[int]]:
    """POST every delivery once from ``threads`` threads; (seconds, status counts)."""
    counter = itertools.count()
    tallies: list[Counter[int]] = [Counter() for _ in range(threads)]

    def worker(tally: Counter[int]) -> None:
        while (i := next(counter)) < len(deliveries):
            body, headers = deliveries[i]
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            try:
                conn.request("POST", path, body, {**headers, "Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                tally[response.status] += 1
            except OSError:
                tally[0] += 1
            finally:
                conn.close()

    pool = [threading.Thread(target=worker, args=(tally,)) for tally in tallies]
    start = time.perf_counter()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - start
    return elapsed, sum(tallies, Counter())


def _payments(prefix: str, count: int) -> list[Any]:
    from django_paygate.models import get_payment_model

    Payment = get_payment_model()
    rows = [
        Payment(
            provider="dummy",
            provider_payment_id=f"{prefix}_{i}",
            amount=1000,
            currency="USD",
            status="pending",
            email="buyer@example.com",
        )
        for i in range(count)
    ]
    return Payment.objects.bulk_create(rows, batch_size=1000)


def _events(payments: list[Any]) -> list[tuple[bytes, dict[str, str]]]:
    from django_paygate.providers import get_provider
    from django_paygate.providers.dummy import DummyProvider

    dummy = get_provider("dummy")
    assert isinstance(dummy, DummyProvider)
    deliveries = []
    for payment in payments:
        data = {
            "payment": {
                "id": payment.provider_payment_id,
                "amount": payment.amount,
                "currency": payment.currency,
                "amount_captured": payment.amount,
                "status": "succeeded",
                "failure_code": "",
            },
            "payment_id": str(payment.pk),
        }
        deliveries.append(
            dummy.build_event("payment.succeeded", data, event_id=f"evt_{uuid.uuid4().hex}")
        )
    return deliveries


def count_statements() -> dict[str, int]:
    """Data statements of (c): a first delivery through the view, what runs after its
    answer (the outbox delivery), and a duplicate."""
    from django.db import connection
    from django.test import RequestFactory
    from django.test.utils import CaptureQueriesContext

    from django_paygate.views.webhooks import webhook_view

    verbs = ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")

    def data(captured: CaptureQueriesContext) -> int:
        return sum(
            1 for q in captured.captured_queries if q["sql"].lstrip().upper().startswith(verbs)
        )

    def post() -> Any:
        return webhook_view(
            RequestFactory().post(
                PAYGATE_PATH, data=body, content_type="application/json", headers=headers
            ),
            alias="dummy",
        )

    ((body, headers),) = _events(_payments("bench_count", 1))
    with CaptureQueriesContext(connection) as first:
        response = post()
    with CaptureQueriesContext(connection) as after:
        response.close()
    with CaptureQueriesContext(connection) as duplicate:
        post().close()
    return {"first": data(first), "outbox": data(after), "duplicate": data(duplicate)}


LABELS = (
    "(a) verify the signature only",
    "(b) floor: verify + INSERT ON CONFLICT + UPDATE",
    "(b+) the design's rows by hand, django-paygate's SQL",
    "(c) django-paygate, outbox delivered in the request",
    "(c') django-paygate, outbox left to its worker",
    DRAIN,
    DRAIN_ASYNC,
)


def run_round(db_name: str, args: argparse.Namespace, number: int) -> dict[str, float]:
    """Every scenario once, on fresh payments; events/s by scenario key ("(a)" … "(d)")."""
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import override_settings

    from django_paygate.models import Notification, get_payment_model

    n, w = args.requests, args.warmup
    payments = {key: _payments(f"bench_{key}{number}", n + w) for key in ("b", "e", "c", "d")}
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # as autovacuum would have: the planner needs statistics
    connection.close()
    scenarios = [
        (LABELS[0], VERIFY_PATH, "b", "immediate"),
        (LABELS[1], FLOOR_PATH, "b", "immediate"),
        (LABELS[2], ROWS_PATH, "e", "immediate"),
        (LABELS[3], PAYGATE_PATH, "c", "immediate"),
        (LABELS[4], PAYGATE_PATH, "d", "worker"),
    ]
    print(f"\nround {number}\n{'scenario':55} {'seconds':>8} {'events/s':>9}  answers")
    rates: dict[str, float] = {}
    for label, path, key, outbox in scenarios:
        server = Server(db_name, args.workers, outbox, args.prepared)
        try:
            deliveries = _events(payments[key])
            drive(server.port, path, deliveries[:w], args.threads)
            elapsed, statuses = drive(server.port, path, deliveries[w:], args.threads)
        finally:
            server.stop()
        rates[label[:4].strip()] = n / elapsed
        answers = ", ".join(
            f"{count}x{status or 'error'}" for status, count in sorted(statuses.items())
        )
        print(f"{label:55} {elapsed:8.2f} {n / elapsed:9.0f}  {answers}")

    # (b+) left outbox rows no worker is meant to deliver: only (c')'s are drained.
    Notification.objects.filter(
        payment__provider_payment_id__startswith=f"bench_e{number}_"
    ).delete()
    owed = list(Notification.objects.filter(status=Notification.Status.PENDING).order_by("pk"))
    # (d') drains a copy of the same rows; the drain takes the oldest first: (d) the originals.
    Notification.objects.bulk_create(
        [Notification(kind=row.kind, payment_id=row.payment_id) for row in owed]
    )
    for label, sync_commit in ((DRAIN, True), (DRAIN_ASYNC, False)):
        with override_settings(
            PAYGATE={**settings.PAYGATE, "NOTIFICATION_SYNC_COMMIT": sync_commit}
        ):
            start = time.perf_counter()
            call_command(
                "paygate_send_notifications",
                "--limit",
                str(len(owed)),
                *_batch_args(args),
                stdout=io.StringIO(),
            )
            elapsed = time.perf_counter() - start
        rates[label[:4].strip()] = len(owed) / elapsed
        print(f"{label:55} {elapsed:8.2f} {len(owed) / elapsed:9.0f}  {len(owed)} notifications")
    if Notification.objects.exclude(status=Notification.Status.SENT).exists():
        raise RuntimeError("(d) and (d') left notifications unsent")
    for key, scenario in (("e", "(b+)"), ("c", "(c)"), ("d", "(c')")):
        done = (
            get_payment_model()
            .objects.filter(
                provider_payment_id__startswith=f"bench_{key}{number}_", status="succeeded"
            )
            .count()
        )
        if done != n + w:
            raise RuntimeError(f"{scenario} moved {done} of {n + w} payments to succeeded")
    return rates


def profile_round(db_name: str, args: argparse.Namespace) -> None:
    """(c) under one instrumented gunicorn worker; the phase table of its deliveries."""
    import tempfile

    from django.db import connection

    n, w = args.requests, args.warmup
    payments = _payments("bench_profile", n + w)
    connection.close()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "profile"
        server = Server(db_name, 1, "immediate", args.prepared, profile=out)
        try:
            deliveries = _events(payments)
            drive(server.port, PAYGATE_PATH, deliveries[:w], 1)
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            conn.request("GET", PROFILE_RESET_PATH)
            conn.getresponse().read()
            conn.close()
            elapsed, statuses = drive(server.port, PAYGATE_PATH, deliveries[w:], 1)
        finally:
            server.stop()
        print(f"(c) with one worker and one client thread: {n / elapsed:.0f} events/s, {statuses}")
        print_profile(out)


def _batch_args(args: argparse.Namespace) -> list[str]:
    """``--batch-size`` for the drain command, when asked (code before batches has none)."""
    return [] if args.batch_size is None else ["--batch-size", str(args.batch_size)]


def profile_worker(db_name: str, args: argparse.Namespace) -> None:
    """(d) in this process, instrumented: where a notification's delivery time goes."""
    import tempfile

    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import F
    from django.test.utils import override_settings
    from django.utils import timezone

    from django_paygate.models import Notification

    n, w = args.requests, args.warmup
    payments = _payments("bench_worker", n + w)
    # As (c') leaves them: succeeded, captured (the receipt shows the date).
    Payment = type(payments[0])
    Payment.objects.filter(provider_payment_id__startswith="bench_worker").update(
        status="succeeded", amount_captured=F("amount"), succeeded_at=timezone.now()
    )
    Notification.objects.bulk_create(
        [Notification(kind="payment_succeeded", payment=payment) for payment in payments]
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    paygate = {**settings.PAYGATE, "NOTIFICATION_SYNC_COMMIT": not args.async_commit}
    with override_settings(PAYGATE=paygate), tempfile.TemporaryDirectory() as tmp:
        call_command(
            "paygate_send_notifications",
            "--limit",
            str(w),
            *_batch_args(args),
            stdout=io.StringIO(),
        )
        profiler = PhaseProfiler(Path(tmp) / "profile")
        profiler.install(WORKER_PHASES)
        start = time.perf_counter()
        call_command("paygate_send_notifications", *_batch_args(args), stdout=io.StringIO())
        elapsed = time.perf_counter() - start
        sent = Notification.objects.filter(
            status=Notification.Status.SENT, payment__provider_payment_id__startswith="bench_worker"
        ).count()
        if sent != n + w:
            raise RuntimeError(f"the drain sent {sent} of {n + w} notifications")
        print(
            f"(d) in this process, NOTIFICATION_SYNC_COMMIT = {not args.async_commit}: "
            f"{n / elapsed:.0f} notifications/s instrumented"
        )
        data = {"requests": n, "totals": profiler.totals, "clock": profiler.overhead()}
        profiler.out.with_suffix(f".{os.getpid()}.json").write_text(json.dumps(data))
        print_profile(profiler.out, WORKER_PHASES, unit="notification")


def _ratio(rates: dict[str, float], name: str) -> float:
    """A ratio of one round: "(c)/(b)", or "((c') then (d))/(b)" for both run in turn."""
    if name.startswith("(("):
        both = 1 / (1 / rates[CPRIME] + 1 / rates["(d)"])
        return both / rates["(b)"]
    top, bottom = name.split("/")
    return rates[top] / rates[bottom]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per scenario")
    parser.add_argument("--warmup", type=int, default=100, help="untimed requests first")
    parser.add_argument("--threads", type=int, default=8, help="client threads")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument(
        "--rounds", type=int, default=3, help="run every scenario this many times, in turn"
    )
    parser.add_argument(
        "--prepared",
        action="store_true",
        help="server-side binding and prepared statements in every scenario",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="only (c), one gunicorn worker: print where a delivery's time goes, by phase",
    )
    parser.add_argument(
        "--profile-worker",
        action="store_true",
        help="only (d), in this process: print where a notification's time goes, by phase",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="rows per claim of the drain in (d), (d') and --profile-worker "
        "(default: the command's own)",
    )
    parser.add_argument(
        "--async-commit",
        action="store_true",
        help="with --profile-worker: NOTIFICATION_SYNC_COMMIT = False",
    )
    parser.add_argument("--pg-host", default=PG["host"])
    parser.add_argument("--pg-port", default=PG["port"])
    parser.add_argument("--pg-user", default=PG["user"])
    args = parser.parse_args()
    PG.update(host=args.pg_host, port=args.pg_port, user=args.pg_user)
    os.environ.update(PGHOST=args.pg_host, PGPORT=args.pg_port, PGUSER=args.pg_user)

    db_name = f"paygate_bench_{os.getpid()}"
    _admin_sql(f'CREATE DATABASE "{db_name}"')
    try:
        configure(db_name, prepared=args.prepared)
        import django

        django.setup()
        _build_urls()
        from django.core.management import call_command
        from django.db import connection

        call_command("migrate", verbosity=0)
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE TABLE bench_inbox (id bigserial PRIMARY KEY, "
                "provider varchar(64) NOT NULL, event_id varchar(255) NOT NULL, "
                "payload text NOT NULL, "
                "received_at timestamptz NOT NULL, UNIQUE (provider, event_id))"
            )
        statements = count_statements()
        n, w = args.requests, args.warmup
        print(
            f"{n} requests per scenario after {w} warm-up, {args.threads} client threads, "
            f"gunicorn {args.workers} sync workers, PostgreSQL, {os.cpu_count()} CPUs, "
            f"{'prepared statements' if args.prepared else 'client-side binding'}, "
            f"{args.rounds} round(s) of every scenario in turn"
        )
        if args.profile:
            profile_round(db_name, args)
            connection.close()
            return
        if args.profile_worker:
            profile_worker(db_name, args)
            connection.close()
            return
        rounds = [run_round(db_name, args, number) for number in range(1, args.rounds + 1)]

        print("\nmedian over the rounds (each ratio is taken within its round, then the median)")
        for label in LABELS:
            print(f"{label:55} {'':8} {median(r[label[:4].strip()] for r in rounds):9.0f}")
        ratios = {
            "(b)/(a)": "the cost of durability",
            "(b+)/(b)": "the cost of the design's rows",
            "(c)/(b)": "target: >= 0.50 (the default path, delivered in the web process)",
            "(c')/(b)": "target: >= 0.80 (the outbox left to its worker)",
            "(c')/(b+)": "django-paygate beside its own SQL",
            "((c') then (d))/(b)": "the worker on the same CPUs",
            "(d')/(d)": "the mark without waiting for the WAL flush",
        }
        for name, note in ratios.items():
            value = median(_ratio(r, name) for r in rounds)
            spread = ", ".join(f"{_ratio(r, name):.2f}" for r in rounds)
            print(f"ratio {name:20} = {value:.2f}   ({spread}){'   ' + note if note else ''}")
        print(
            f"\nSQL data statements: first delivery {statements['first']} "
            f"(+{statements['outbox']} for the outbox delivery after the answer), "
            f"duplicate {statements['duplicate']}"
        )
        connection.close()
    finally:
        try:
            _admin_sql(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        except Exception as exc:  # report, never hide the benchmark's own error
            print(f"could not drop {db_name}: {exc}", file=sys.stderr)


if __name__ == "__main__":
    main()
