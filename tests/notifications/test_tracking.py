"""anymail's tracking webhooks are recorded on the notification whose email they are about."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from anymail.signals import AnymailTrackingEvent, tracking
from django.urls import reverse
from django.utils import timezone

from django_paygate import notifications
from django_paygate.models import Notification
from tests.notifications.conftest import LOCMEM_BACKEND, use_email_backend
from tests.notifications.factories import make_notification

pytestmark = pytest.mark.django_db


def sent_receipt(outbox: list[Any]) -> Notification:
    """A receipt sent through anymail's test ESP backend, and its outbox row."""
    row = make_notification("payment_succeeded")
    assert notifications.deliver([row.pk])["sent"] == 1
    row.refresh_from_db()
    assert row.esp_message_id == str(outbox.index(outbox[-1]))  # the test ESP's id
    return row


def track(event_type: str, message_id: str, **fields: Any) -> None:
    """What anymail's tracking webhook view sends, for any ESP."""
    event = AnymailTrackingEvent(event_type=event_type, message_id=message_id, **fields)
    tracking.send(sender=object, event=event, esp_name="TestESP")


def test_a_bounce_is_recorded_on_the_receipt(outbox):
    row = sent_receipt(outbox)

    track(
        "bounced",
        row.esp_message_id,
        recipient="ann@example.com",
        reject_reason="bounced",
        mta_response="550 5.1.1 No such user",
        timestamp=timezone.now(),
    )

    row.refresh_from_db()
    assert row.delivery_status == "bounced"
    assert "550 5.1.1 No such user" in row.delivery_detail
    assert "ann@example.com" in row.delivery_detail
    assert row.delivery_updated_at is not None


@pytest.mark.parametrize("event_type", ["delivered", "complained", "rejected"])
def test_each_outcome_is_recorded(outbox, event_type):
    row = sent_receipt(outbox)
    track(event_type, row.esp_message_id)
    row.refresh_from_db()
    assert row.delivery_status == event_type


def test_an_older_event_does_not_overwrite_a_newer_one(outbox):
    row = sent_receipt(outbox)
    now = timezone.now()
    track("bounced", row.esp_message_id, timestamp=now)
    track("deferred", row.esp_message_id, timestamp=now - timedelta(minutes=5))
    row.refresh_from_db()
    assert row.delivery_status == "bounced"


def test_opens_clicks_and_other_messages_change_nothing(outbox):
    row = sent_receipt(outbox)
    track("delivered", row.esp_message_id)
    track("opened", row.esp_message_id)
    track("clicked", row.esp_message_id)
    track("bounced", "someone-elses-message")
    row.refresh_from_db()
    assert row.delivery_status == "delivered"


def test_without_an_esp_no_message_id_is_stored(settings):
    use_email_backend(settings, LOCMEM_BACKEND)
    row = make_notification("payment_succeeded")
    assert notifications.deliver([row.pk])["sent"] == 1
    row.refresh_from_db()
    assert (row.status, row.esp_message_id) == ("sent", "")
    track("bounced", "")  # an event without a message id matches nothing
    row.refresh_from_db()
    assert row.delivery_status == ""


def test_staff_see_the_delivery_in_the_admin(outbox, admin_client):
    row = sent_receipt(outbox)
    track("bounced", row.esp_message_id, mta_response="550 No such user")

    changelist = admin_client.get(reverse("admin:paygate_notification_changelist"))
    change = admin_client.get(reverse("admin:paygate_notification_change", args=[row.pk]))

    assert changelist.status_code == change.status_code == 200
    assert "bounced" in changelist.text
    assert "550 No such user" in change.text
    assert "ESP message id" in change.text
