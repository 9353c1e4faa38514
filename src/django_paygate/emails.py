"""Notification emails: rendered from overridable templates, sent through Django's mail API.

Templates live under ``templates/paygate/emails/<name>.subject.txt``,
``<name>.txt`` and ``<name>.html``; a project overrides any of them with a
template of the same name. Messages carry anymail's ``tags`` and ``metadata``
attributes, which any anymail ESP backend reads and other backends ignore.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from django_paygate.models import Notification


def send_notification_email(notification: Notification) -> None:
    """Send the email ``notification`` owes, if any is configured for its kind."""
    from django_paygate.conf import paygate_settings

    if not paygate_settings.EMAILS.get("ENABLED", False):
        return
    raise NotImplementedError("emails are configured but not built yet")
