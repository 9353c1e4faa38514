"""Webhook and health endpoints. They call :mod:`django_paygate.webhooks` and nothing else.

``POST webhooks/<alias>/`` is CSRF-exempt (the signature is the
authentication), login-exempt (``LoginRequiredMiddleware``) and never wrapped
in ``ATOMIC_REQUESTS``: the pipeline runs its own short transaction. A
provider's optional ``WEBHOOK_ALLOWED_IPS`` is checked first (403), then the
body size (413), then everything else happens in :func:`webhooks.receive_webhook`.
The notifications the event committed are handed to the task backend when the
server closes the response, after the provider has its answer (:class:`WebhookResponse`).
"""

from __future__ import annotations

import functools
import json
from typing import IO, Any

from django.contrib.auth.decorators import login_not_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from django_paygate import notifications, security, webhooks

#: Bytes read from the request stream at a time.
READ_CHUNK = 64 * 1024


def read_capped_body(request: HttpRequest, limit: int) -> bytes | None:
    """The raw body, or ``None`` when it is larger than ``limit`` bytes.

    At most ``limit + 1`` bytes are ever read, whatever ``Content-Length``
    claims. When the server delimits the body itself (``wsgi.input_terminated``,
    as gunicorn does, chunked requests included), the stream is read to its
    end, so a missing or understated ``Content-Length`` cannot smuggle a larger
    body past the cap; otherwise Django's stream stops at ``Content-Length``.
    """
    if hasattr(request, "_body"):  # something upstream already read it
        body = request.body
        return None if len(body) > limit else body
    environ = getattr(request, "environ", {})
    stream: IO[bytes] | HttpRequest = request
    if environ.get("wsgi.input_terminated") and "wsgi.input" in environ:
        stream = environ["wsgi.input"]
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = stream.read(min(READ_CHUNK, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return None if size > limit else b"".join(chunks)


def _declared_length(request: HttpRequest) -> int | None:
    try:
        return int(request.META.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None


class WebhookResponse(HttpResponse):
    """The webhook's answer; it carries the notifications the event committed.

    The server closes a response once it has sent it (PEP 3333; Django's ASGI
    handler too): only then are the notifications handed to the task backend, so
    with the default immediate backend the post-commit signals and emails run
    after the provider has its answer. ``Content-Length`` is set, so a client
    knows the answer is complete before the connection ends.
    """

    def __init__(self, body: bytes, status: int, owed: notifications.Held | None = None) -> None:
        super().__init__(body, content_type="application/json", status=status)
        self["Content-Length"] = str(len(body))
        self.owed = owed

    def close(self) -> None:
        owed, self.owed = self.owed, None
        try:
            if owed is not None:
                notifications.hand_over(owed)
        finally:
            super().close()


def _answer(result: webhooks.WebhookResult, owed: notifications.Held | None = None) -> HttpResponse:
    return WebhookResponse(_answer_body(result.message), result.status_code, owed)


@functools.cache
def _answer_body(message: str) -> bytes:
    """``{"status": message}`` as JSON; the messages are a handful of constants."""
    return json.dumps({"status": message}).encode()


@method_decorator([csrf_exempt, login_not_required], name="dispatch")
class WebhookView(View):
    """``POST webhooks/<alias>/``: one door for every provider's events."""

    http_method_names = ["post", "options"]

    def post(self, request: HttpRequest, alias: str) -> HttpResponse:
        if not security.webhook_ip_allowed(request, alias):
            return JsonResponse({"status": "Forbidden."}, status=403)
        limit = webhooks.max_body_size()
        declared = _declared_length(request)
        too_large = webhooks.WebhookResult(413, "Payload too large.", outcome=webhooks.REJECTED)
        if declared is not None and declared > limit:
            return _answer(too_large)
        body = read_capped_body(request, limit)
        if body is None:
            return _answer(too_large)
        with notifications.held() as owed:
            result = webhooks.receive_webhook(alias, body, request.headers)
        return _answer(result, owed)


# Not wrapped in ATOMIC_REQUESTS: the pipeline manages its own short transaction.
webhook_view = transaction.non_atomic_requests(WebhookView.as_view())


@login_not_required
def health_view(request: HttpRequest) -> HttpResponse:
    """``GET webhooks/health/``: liveness for anyone, inbox details for staff."""
    if request.method not in {"GET", "HEAD"}:
        response = JsonResponse({"status": "Method not allowed."}, status=405)
        response["Allow"] = "GET, HEAD"
        return response
    user: Any = getattr(request, "user", None)
    details = bool(user is not None and user.is_active and user.is_staff)
    body, database = webhooks.health(details=details)
    response = JsonResponse(body, status=200 if database else 503)
    response["Cache-Control"] = "no-store"
    return response
