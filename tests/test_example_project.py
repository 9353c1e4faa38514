"""Smoke test of example_project: check, migrate and a whole shop flow, in a subprocess.

The example runs with its own settings (its ``shop`` app is not installed in
the test settings), so it runs in a separate interpreter on a temporary
SQLite database, exactly as ``scripts/demo`` runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "example_project"


def _env(db_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PAYGATE_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="example_project.settings",
        EXAMPLE_DB_PATH=str(db_path),
        # This checkout's package first, whatever the interpreter has installed.
        PYTHONPATH=os.pathsep.join([str(EXAMPLE), str(EXAMPLE.parent / "src")]),
        PYTHONWARNINGS="error::RuntimeWarning",
    )
    return env


def _run(db_path: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, *args],
        cwd=EXAMPLE,
        env=_env(db_path),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _manage(db_path: Path, *args: str) -> str:
    return _run(db_path, "manage.py", *args)


@pytest.fixture(scope="module")
def example_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db_path = tmp_path_factory.mktemp("example") / "db.sqlite3"
    _manage(db_path, "migrate", "--noinput", "-v", "0")
    return db_path


def test_check_is_clean_and_migrations_are_complete(example_db):
    assert "no issues" in _manage(example_db, "check", "--fail-level", "WARNING")
    assert "No changes detected" in _manage(example_db, "makemigrations", "--check", "--dry-run")


def test_ensure_demo_admin_is_idempotent(example_db):
    assert "Created superuser 'demo'" in _manage(
        example_db, "ensure_demo_admin", "--username", "demo", "--password", "pw"
    )
    assert "already exists" in _manage(example_db, "ensure_demo_admin", "--username", "demo")


FLOW = textwrap.dedent(
    """
    import json
    import os
    import socket
    import threading
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    import django

    # The shop, served over HTTP, so the dummy provider's POSTed webhooks reach it.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    os.environ["EXAMPLE_DUMMY_WEBHOOK_URL"] = f"http://127.0.0.1:{port}/api/payments/webhooks/dummy/"
    django.setup()

    from django.core.wsgi import get_wsgi_application

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = make_server("127.0.0.1", port, get_wsgi_application(), handler_class=Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    from django.contrib.auth import get_user_model
    from django.test import Client

    from django_paygate.models import WebhookEvent
    from shop.models import Order

    client = Client()
    out = {}

    response = client.post("/", {"product": "tshirt", "email": "buyer@example.com"})
    assert response.status_code == 302, response.status_code
    checkout = response["Location"]
    out["checkout"] = checkout
    order = Order.objects.get(email="buyer@example.com")
    out["after_start"] = [order.status, order.payment.status]
    payment_id = str(order.payment.pk)

    page = client.get(checkout)
    out["checkout_page"] = [page.status_code, "Pay $25.00" in page.content.decode()]
    out["foreign_order"] = client.post(
        "/api/payments/create_intent/",
        {"payable": "order", "id": str(order.pk), "amount": 1},
        content_type="application/json",
    ).status_code

    def confirm(card):
        return client.post(
            "/api/payments/confirm_payment/",
            {"payment_id": payment_id, "payment_method": card},
            content_type="application/json",
        )

    declined = confirm("4000000000000002")
    out["declined"] = [declined.status_code, declined.json()["error"]["decline_code"]]
    order.refresh_from_db()
    out["after_decline"] = [order.status, order.payment.status]

    out["paid_confirm"] = confirm("4242424242424242").status_code
    paid = client.get(f"/api/payments/checkout/{payment_id}/return/")
    out["paid_redirect"] = [paid.status_code, paid["Location"]]
    order.refresh_from_db()
    out["after_pay"] = [order.status, order.payment.status, order.payment.amount_captured]
    status_page = client.get(paid["Location"]).content.decode()
    out["status_page_says_paid"] = "Paid" in status_page and "succeeded" in status_page
    out["checkout_after_pay"] = client.get(checkout)["Location"]
    again = client.post(
        "/api/payments/create_intent/",
        {"payable": "order", "id": str(order.pk)},
        content_type="application/json",
    )
    out["pay_again"] = [again.status_code, again.json()["error"]["code"]]
    client.logout()

    refund_url = f"/orders/{order.pk}/refund/"
    anonymous = client.post(refund_url, {"amount": "5.00"})
    out["anonymous_refund"] = [anonymous.status_code, anonymous["Location"].split("?")[0]]

    staff = get_user_model().objects.create_superuser("staff", "staff@example.com", "pw")
    client.force_login(staff)
    assert "Staff: refund" in client.get(paid["Location"]).content.decode()
    too_much = client.post(refund_url, {"amount": "99.00"}, follow=True).content.decode()
    out["too_much_refused"] = "Refund refused" in too_much
    client.post(refund_url, {"amount": "5.00", "reason": "scratched"})
    order.refresh_from_db()
    payment = order.payment
    out["after_partial_refund"] = [order.status, payment.status, payment.amount_refunded]
    client.post(refund_url, {"amount": "", "reason": ""})
    order.refresh_from_db()
    out["after_full_refund"] = [order.status, order.payment.status, order.payment.amount_refunded]

    from django_paygate.providers import get_provider

    out["delivered"] = get_provider("dummy").wait_for_deliveries()
    out["inbox"] = sorted(WebhookEvent.objects.values_list("type", "status"))
    out["inbox_page"] = client.get("/staff/webhooks/").status_code
    out["health"] = client.get("/api/payments/webhooks/health/").json()["status"]
    print("RESULT " + json.dumps(out))
    """
)


def test_shop_flow_pays_and_refunds_an_order(example_db):
    output = _run(example_db, "-c", FLOW)
    [line] = [line for line in output.splitlines() if line.startswith("RESULT ")]
    out = json.loads(line.removeprefix("RESULT "))

    assert out["checkout"].startswith("/api/payments/checkout/")  # the shipped checkout
    assert out["after_start"] == ["new", "pending"]
    assert out["checkout_page"] == [200, True]
    assert out["foreign_order"] == 400  # the browser sets no price
    assert out["declined"] == [402, "card_declined"]
    assert out["after_decline"] == ["new", "failed"]
    assert out["paid_confirm"] == 200
    assert out["paid_redirect"][0] == 302
    assert out["paid_redirect"][1].startswith("/orders/")
    assert out["after_pay"] == ["paid", "succeeded", 2500]
    assert out["status_page_says_paid"] is True
    assert out["checkout_after_pay"] == out["paid_redirect"][1]
    assert out["pay_again"] == [409, "already_paid"]
    assert out["anonymous_refund"] == [302, "/admin/login/"]
    assert out["too_much_refused"] is True
    assert out["after_partial_refund"] == ["paid", "partially_refunded", 500]
    assert out["after_full_refund"] == ["refunded", "refunded", 2500]
    # Every change also arrived as a signed webhook, POSTed by the dummy provider to the
    # shop's webhook URL over HTTP, and went through the inbox.
    assert out["delivered"] is True
    assert out["inbox"] == [
        ["payment.failed", "processed"],
        ["payment.succeeded", "processed"],
        ["refund.succeeded", "processed"],
        ["refund.succeeded", "processed"],
    ]
    assert out["inbox_page"] == 200
    assert out["health"] == "ok"
