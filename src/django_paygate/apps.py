from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PaygateConfig(AppConfig):
    name = "django_paygate"
    label = "paygate"
    verbose_name = _("Payments")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_paygate import checks  # noqa: F401  (registers the system checks)
        from django_paygate.notifications import connect_tracking

        connect_tracking()  # anymail's delivery tracking, when anymail is installed
