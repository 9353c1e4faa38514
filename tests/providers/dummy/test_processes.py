"""A dummy payment made in one process is refunded in another (``manage.py shell`` style)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def django(db: Path, *args: str) -> str:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        "PAYGATE_TEST_SQLITE_FILE": str(db),
        "PAYGATE_TEST_DUMMY_STORE": "database",
    }
    env.pop("PAYGATE_TEST_DB", None)
    done = subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


PAY = """
from django_paygate import services
payment = services.create_payment(amount=1999, currency="USD", email="ann@example.com")
payment = services.confirm_payment(payment, payment_method="4242424242424242")
print(payment.pk)
"""

REFUND = """
from django_paygate import services
from django_paygate.models import get_payment_model
payment = get_payment_model().objects.get(pk="{pk}")
refund = services.refund_payment(payment, amount=999)
payment.refresh_from_db()
print(refund.status, refund.provider_refund_id, payment.status, payment.amount_refunded)
"""

REMOTE = """
from django_paygate.providers import get_provider
from django_paygate.models import get_payment_model
payment = get_payment_model().objects.get(pk="{pk}")
remote = get_provider("dummy")._remote[payment.provider_payment_id]
print(remote.status.value, remote.captured, remote.refunded)
"""


def test_a_payment_made_in_one_process_is_refunded_in_another(tmp_path):
    db = tmp_path / "shared.sqlite3"
    django(db, "migrate", "--noinput", "-v", "0")

    pk = django(db, "shell", "-c", PAY)
    status, refund_id, payment_status, refunded = django(
        db, "shell", "-c", REFUND.format(pk=pk)
    ).split()

    assert (status, payment_status, refunded) == ("succeeded", "partially_refunded", "999")
    assert refund_id.startswith("dummy_re_")
    # A third process sees the remote side as the refund left it.
    assert django(db, "shell", "-c", REMOTE.format(pk=pk)).split() == ["succeeded", "1999", "999"]
