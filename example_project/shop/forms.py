from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms

from django_paygate import money
from django_paygate.exceptions import InvalidAmount
from shop.products import PRODUCTS


class StartForm(forms.Form):
    product = forms.ChoiceField(
        choices=[
            (p.slug, f"{p.name} — {money.format_money(p.amount, p.currency)}")
            for p in PRODUCTS.values()
        ],
        widget=forms.RadioSelect,
        initial="mug",
    )
    email = forms.EmailField(
        required=False, help_text="Receipts are printed on the server console."
    )


class RefundForm(forms.Form):
    amount = forms.DecimalField(
        required=False, min_value=Decimal("0"), help_text="Leave empty to refund everything left."
    )
    reason = forms.CharField(required=False, max_length=200)

    def __init__(self, *args: Any, currency: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.currency = currency

    def clean_amount(self) -> int | None:
        value = self.cleaned_data.get("amount")
        if value is None:
            return None
        try:
            return money.to_minor(value, self.currency)
        except InvalidAmount as exc:
            raise forms.ValidationError(str(exc)) from exc
