"""The checkout pages: owner only, return URL, the price check, the template tag."""

from __future__ import annotations

from typing import Any

import pytest
from django.template import Context, Template
from django.test import Client, RequestFactory

from django_paygate import services
from django_paygate.exceptions import PaymentDeclined
from django_paygate.providers.dummy import CARD_DECLINED, CARD_SUCCEEDS
from tests.factories import UserFactory
from tests.testapp.models import Order

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner() -> Any:
    return UserFactory()


@pytest.fixture
def payment(owner: Any) -> Any:
    order = Order.objects.create(reference="V-1", amount=1500, currency="EUR", owner=owner)
    return services.create_payment(payable=order, user=owner)


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_owner_gets_the_page_without_inline_script(owner: Any, payment: Any) -> None:
    response = client_for(owner).get(f"/api/payments/checkout/{payment.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "€15.00" in html
    assert 'id="paygate-config" type="application/json"' in html
    assert "paygate/checkout.js" in html
    # Every <script> is either the JSON data block or loads a file: nothing inline runs.
    for chunk in html.split("<script")[1:]:
        tag = chunk.split(">", 1)[0]
        assert "src=" in tag or 'type="application/json"' in tag
    assert "style=" not in html
    assert response["Cache-Control"].startswith("max-age=0")


@pytest.mark.parametrize("who", ["other", "anonymous"])
def test_nobody_else_gets_it(payment: Any, who: str) -> None:
    client = client_for(UserFactory()) if who == "other" else Client()
    response = client.get(f"/api/payments/checkout/{payment.pk}/")
    assert response.status_code in {404, 302}
    assert "client_secret" not in response.content.decode()


def test_return_goes_to_the_payables_success_or_failure_url(owner: Any, payment: Any) -> None:
    client = client_for(owner)
    with pytest.raises(PaymentDeclined):
        services.confirm_payment(payment, payment_method=CARD_DECLINED)
    failed = client.get(f"/api/payments/checkout/{payment.pk}/return/")
    assert failed["Location"] == f"/orders/{payment.payable.pk}/failed/"
    services.confirm_payment(payment, payment_method=CARD_SUCCEEDS)
    paid = client.get(f"/api/payments/checkout/{payment.pk}/return/")
    assert paid["Location"] == f"/orders/{payment.payable.pk}/thanks/"
    # A paid payment's checkout page sends the customer on.
    page = client.get(f"/api/payments/checkout/{payment.pk}/")
    assert page["Location"] == f"/orders/{payment.payable.pk}/thanks/"


def test_the_check_answers_409_and_cancels_when_the_price_changed(owner: Any, payment: Any) -> None:
    client = Client(enforce_csrf_checks=False)
    client.force_login(owner)
    assert client.post(f"/api/payments/checkout/{payment.pk}/check/").status_code == 204
    Order.objects.filter(pk=payment.payable.pk).update(amount=1600)
    response = client.post(f"/api/payments/checkout/{payment.pk}/check/")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "payable_changed"
    payment.refresh_from_db()
    assert payment.status == "canceled"
    back = client.get(f"/api/payments/checkout/{payment.pk}/return/")
    assert back["Location"] == f"/orders/{payment.payable.pk}/failed/"


def test_the_check_needs_the_csrf_token(owner: Any, payment: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert client.post(f"/api/payments/checkout/{payment.pk}/check/").status_code == 403


def test_the_template_tag_renders_the_widget_for_the_owner_only(owner: Any, payment: Any) -> None:
    template = Template("{% load paygate %}<main>{% paygate_checkout payment %}</main>")
    request = RequestFactory().get("/shop/")
    request.user = owner
    html = template.render(Context({"request": request, "payment": payment}))
    assert "data-paygate-checkout" in html
    assert "paygate/checkout.css" in html
    request.user = UserFactory()
    assert template.render(Context({"request": request, "payment": payment})) == "<main></main>"


def test_the_razorpay_page_loads_checkout_js_with_the_order_and_no_secret(
    owner: Any, settings: Any
) -> None:
    from tests.factories import PaymentFactory
    from tests.providers.razorpay.conftest import KEY_ID, KEY_SECRET, paygate_setting

    settings.PAYGATE = paygate_setting()
    payment = PaymentFactory(
        provider="razorpay", provider_payment_id="order_Pg1234567890ab", user=owner, amount=49900
    )
    html = client_for(owner).get(f"/api/payments/checkout/{payment.pk}/").content.decode()
    assert '<script src="https://checkout.razorpay.com/v1/checkout.js" defer>' in html
    assert "order_Pg1234567890ab" in html
    assert KEY_ID in html
    assert KEY_SECRET not in html
    assert "data-paygate-razorpay" in html


def test_the_stripe_script_url_is_an_option(owner: Any, settings: Any, monkeypatch: Any) -> None:
    from django_paygate.providers import get_provider
    from tests.factories import PaymentFactory
    from tests.providers.stripe.conftest import paygate_setting

    settings.PAYGATE = paygate_setting(api_base="https://stripe.invalid", script_url="/js/s.js")
    monkeypatch.setattr(
        type(get_provider("stripe")),
        "client_data",
        lambda self, p: {"client_secret": "pi_1_secret_2", "publishable_key": "pk_test_1"},
    )
    payment = PaymentFactory(provider="stripe", provider_payment_id="pi_1", user=owner)
    html = client_for(owner).get(f"/api/payments/checkout/{payment.pk}/").content.decode()
    assert '<script src="/js/s.js" defer>' in html
    assert "pi_1_secret_2" in html  # the owner's own page: Stripe.js needs it
