"""The pytest plugin: its fixtures here, and in fresh host projects run in a subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from django_paygate.models import WebhookEvent
from django_paygate.providers.dummy import DummyProvider
from django_paygate.testing import SignalRecorder, fakes
from django_paygate.testing.pytest_plugin import WebhookSender
from django_paygate.testing.webhooks import dummy_payment_data


def test_plugin_is_registered_through_the_entry_point(request):
    from importlib.metadata import entry_points

    [entry] = entry_points(group="pytest11", name="paygate")
    assert entry.value == "django_paygate.testing.pytest_plugin"
    assert request.config.pluginmanager.has_plugin("paygate")


def test_paygate_dummy_is_the_configured_dummy(paygate_dummy):
    assert isinstance(paygate_dummy, DummyProvider)
    assert paygate_dummy.alias == "dummy"
    assert paygate_dummy.sent_events == []


@pytest.mark.django_db(transaction=True)
def test_paygate_signals_records_in_and_after_transaction(paygate_dummy, paygate_signals):
    assert isinstance(paygate_signals, SignalRecorder)
    payment = fakes.make_succeeded_payment()
    assert paygate_signals.names() == [
        "payment_status_changed",  # created -> succeeded, inside the transaction
        "payment_succeeded",
    ]
    changed = paygate_signals.last("payment_status_changed")
    assert (changed.kwargs["old_status"], changed.kwargs["new_status"]) == ("pending", "succeeded")
    assert paygate_signals.last("payment_succeeded").payment.pk == payment.pk
    assert paygate_signals.count("refund_succeeded") == 0
    with pytest.raises(AssertionError, match="refund_succeeded was not sent"):
        paygate_signals.last("refund_succeeded")
    with pytest.raises(ValueError, match="not recorded"):
        paygate_signals.count("no_such_signal")


@pytest.mark.django_db
def test_signal_recorder_disconnects():
    from django_paygate.signals import payment_succeeded

    with SignalRecorder(["payment_succeeded"]) as recorder:
        payment_succeeded.send(sender=None, payment="p")
    payment_succeeded.send(sender=None, payment="q")
    assert [c.payment for c in recorder.calls] == ["p"]
    with pytest.raises(ValueError, match="Unknown paygate signal"):
        SignalRecorder(["nope"])


@pytest.mark.django_db(transaction=True)
def test_paygate_webhook_signs_with_the_configured_secret(paygate_dummy, paygate_webhook, settings):
    settings.PAYGATE = {
        "PROVIDERS": {
            "dummy": {
                "BACKEND": "django_paygate.providers.dummy.DummyProvider",
                "OPTIONS": {"webhook_secret": ["rotated-new", "rotated-old"]},
            }
        }
    }
    assert isinstance(paygate_webhook, WebhookSender)
    assert paygate_webhook.secret("dummy") == "rotated-new"
    payment = fakes.make_payment(amount=1234)

    response = paygate_webhook.dummy("payment.succeeded", dummy_payment_data(payment))

    assert response.status_code == 200
    assert response.json() == {"status": "Event processed."}
    payment.refresh_from_db()
    assert payment.status == "succeeded"
    assert WebhookEvent.objects.get().status == "processed"


# -- In fresh projects ----------------------------------------------------------


def _run_pytest(project: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PAYGATE_"))}
    environ["PYTHONPATH"] = str(project)
    environ.update(env or {})
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            *args,
        ],
        cwd=project,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def _outcomes(output: str) -> dict[str, int]:
    return {
        word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|errors?)", output)
    }


def _write(project: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (project / name).write_text(textwrap.dedent(text))


def test_plugin_leaves_a_project_without_django_alone(tmp_path):
    _write(
        tmp_path,
        {
            "pytest.ini": "[pytest]\n",
            "test_plain.py": """
                import pytest

                def test_plain(request):
                    assert request.config.pluginmanager.has_plugin("paygate")
                    # The builders need no Django settings either.
                    from django_paygate.testing import razorpay_event, stripe_event

                    assert stripe_event("x", {}, secret="s")[1]["Stripe-Signature"]
                    assert razorpay_event("x", {}, secret="s")[1]["X-Razorpay-Signature"]
                    from django.conf import settings

                    assert not settings.configured

                @pytest.mark.live
                def test_live_sandbox():
                    raise AssertionError("must not run without PAYGATE_RUN_LIVE_TESTS")
                """,
        },
    )
    code, output = _run_pytest(tmp_path, "-W", "error::pytest.PytestUnknownMarkWarning")
    assert code == 0, output
    assert _outcomes(output) == {"passed": 1, "skipped": 1}, output

    code, output = _run_pytest(tmp_path, env={"PAYGATE_RUN_LIVE_TESTS": "1"})
    assert code == 1, output
    assert _outcomes(output) == {"passed": 1, "failed": 1}, output
    assert "must not run without" in output


HOST_SETTINGS = """
    SECRET_KEY = "host-tests"
    USE_TZ = True
    ROOT_URLCONF = "host_urls"
    DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
    INSTALLED_APPS = [
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django_paygate",
    ]
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
    PAYGATE = {
        "DEFAULT_PROVIDER": "fake",
        "PROVIDERS": {
            "fake": {
                "BACKEND": "django_paygate.providers.dummy.DummyProvider",
                "OPTIONS": {"webhook_secret": "host-secret"},
            },
        },
    }
    """

HOST_URLS = """
    from django.urls import include, path

    urlpatterns = [path("hooks/", include("django_paygate.urls"))]
    """

HOST_TESTS = """
    import pytest

    from django_paygate import services
    from django_paygate.testing import deliver_pending_events, make_succeeded_payment
    from django_paygate.testing.webhooks import dummy_event, dummy_payment_data

    pytestmark = pytest.mark.django_db(transaction=True)


    def test_a_pay_and_deliver(client, paygate_dummy, paygate_signals):
        assert paygate_dummy.alias == "fake"
        payment = make_succeeded_payment(amount=4200, currency="GBP")
        services.refund_payment(payment)
        [paid, refunded] = deliver_pending_events(client, paygate_dummy)
        assert paid.status_code == refunded.status_code == 200
        assert paygate_signals.count("payment_succeeded") == 1
        assert paygate_signals.count("refund_succeeded") == 1
        paygate_dummy.fail_next("confirm_payment")  # must not leak into the next test


    def test_b_state_was_reset(paygate_dummy, paygate_signals):
        assert paygate_dummy.sent_events == []
        assert paygate_dummy.calls == []
        payment = services.create_payment(amount=100, currency="USD")
        payment = services.confirm_payment(payment, payment_method="4242424242424242")
        assert payment.status == "succeeded"
        assert paygate_signals.names() == ["payment_status_changed", "payment_succeeded"]


    def test_c_webhook_fixture(paygate_webhook):
        payment = services.create_payment(amount=100, currency="USD")
        response = paygate_webhook.dummy("payment.succeeded", dummy_payment_data(payment))
        assert response.status_code == 200, response.content
        assert response.request["PATH_INFO"] == "/hooks/webhooks/fake/"
        forged = dummy_event("payment.failed", dummy_payment_data(payment, status="failed"))
        assert paygate_webhook("fake", *forged).status_code == 400  # default secret: refused
        payment.refresh_from_db()
        assert payment.status == "succeeded"
    """


def test_fixtures_in_a_host_project(tmp_path):
    _write(
        tmp_path,
        {
            "pytest.ini": "[pytest]\nDJANGO_SETTINGS_MODULE = host_settings\n",
            "host_settings.py": HOST_SETTINGS,
            "host_urls.py": HOST_URLS,
            "test_host.py": HOST_TESTS,
        },
    )
    code, output = _run_pytest(
        tmp_path,
    )
    assert code == 0, output
    assert _outcomes(output) == {"passed": 3}, output
