"""The host's own pages the checkout sends the customer back to."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from tests.testapp.models import Order


def order_page(request: HttpRequest, pk: int, outcome: str) -> HttpResponse:
    order = get_object_or_404(Order, pk=pk)
    return render(request, "testapp/order.html", {"order": order, "outcome": outcome})
