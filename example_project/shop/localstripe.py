"""Demo only (EXAMPLE_PROVIDER=stripe): what the checkout needs to run against localstripe.

localstripe serves a Stripe.js without the Payment Element that the shipped checkout uses,
and refuses a publishable key for the calls Stripe.js makes. ``stripe.js`` serves the test
suite's stand-in of those calls (tests/browser/stripe_standin.js), pointed at ``relay``,
which forwards them to localstripe with the demo's test secret key. Never in production.
"""

from __future__ import annotations

from pathlib import Path

import requests
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from django_paygate.providers import get_provider

STANDIN = Path(__file__).resolve().parents[2] / "tests" / "browser" / "stripe_standin.js"


def _enabled() -> None:
    if not (settings.DEBUG and settings.SHOP_LOCALSTRIPE_URL):
        raise Http404("Only with EXAMPLE_PROVIDER=stripe in development.")


def stripe_js(request: HttpRequest) -> HttpResponse:
    _enabled()
    script = STANDIN.read_text().replace("__LOCALSTRIPE__", "/_localstripe")
    return HttpResponse(script, content_type="application/javascript")


@csrf_exempt
def relay(request: HttpRequest, path: str) -> HttpResponse:
    _enabled()
    if request.method != "POST" or not path.startswith("payment_intents/"):
        raise Http404("Not relayed.")
    secret = str(get_provider("stripe").options["secret_key"])
    answer = requests.post(
        f"{settings.SHOP_LOCALSTRIPE_URL}/v1/{path}",
        data=request.body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=(secret, ""),
        timeout=10,
    )
    return HttpResponse(answer.content, status=answer.status_code, content_type="application/json")
