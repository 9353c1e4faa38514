"""Webhook and health endpoints. They call :mod:`django_paygate.webhooks` and nothing else."""

from __future__ import annotations

from django.db import connection, transaction
from django.db.models import Count, Max, Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from django_paygate import webhooks
from django_paygate.conf import paygate_settings
from django_paygate.models import WebhookEvent

try:  # Django >= 5.1
    from django.contrib.auth.decorators import login_not_required
except ImportError:  # pragma: no cover
    def login_not_required(view):  # type: ignore[no-untyped-def]
        return view


@method_decorator([csrf_exempt, login_not_required], name="dispatch")
class WebhookView(View):
    """``POST webhooks/<alias>/``: one door for every provider's events."""

    http_method_names = ["post", "options"]

    def post(self, request: HttpRequest, alias: str) -> HttpResponse:
        limit = int(paygate_settings.WEBHOOK_MAX_BODY_SIZE)
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            return JsonResponse({"status": "Payload too large."}, status=413)
        # Read the stream ourselves: the raw bytes are what the signature covers,
        # and the cap applies whatever DATA_UPLOAD_MAX_MEMORY_SIZE says.
        body = request.read(limit + 1)
        result = webhooks.receive_webhook(alias, body, request.headers)
        return JsonResponse({"status": result.message}, status=result.status_code)


# Not wrapped in ATOMIC_REQUESTS: the pipeline manages its own short transactions.
webhook_view = transaction.non_atomic_requests(WebhookView.as_view())


@login_not_required
def health_view(request: HttpRequest) -> HttpResponse:
    """``GET webhooks/health/``: liveness for anyone, inbox details for staff."""
    if request.method not in {"GET", "HEAD"}:
        return JsonResponse({"status": "Method not allowed."}, status=405)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        database = True
    except Exception:
        database = False
    body: dict[str, object] = {"status": "ok" if database else "unavailable", "database": database}
    user = getattr(request, "user", None)
    if database and user is not None and user.is_staff:
        rows = WebhookEvent.objects.values("provider").annotate(
            last_event_at=Max("received_at"),
            failed=Count("id", filter=Q(status=WebhookEvent.Status.FAILED)),
        )
        body["providers"] = {
            row["provider"]: {
                "last_event_at": row["last_event_at"].isoformat() if row["last_event_at"] else None,
                "failed_events": row["failed"],
            }
            for row in rows
        }
        for alias in paygate_settings.PROVIDERS:
            body["providers"].setdefault(alias, {"last_event_at": None, "failed_events": 0})  # type: ignore[attr-defined]
    return JsonResponse(body, status=200 if database else 503)
