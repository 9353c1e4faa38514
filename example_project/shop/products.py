"""The shop's catalogue: a few fixed products, prices in minor units."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Product:
    slug: str
    name: str
    amount: int  # minor units of ``currency``
    currency: str


PRODUCTS = {
    p.slug: p
    for p in (
        Product("mug", "Paygate coffee mug", 1200, "USD"),
        Product("tshirt", "Paygate T-shirt", 2500, "USD"),
        Product("poster", "Webhook poster", 1999, "EUR"),
        Product("tea", "Matcha tea (100 g)", 1500, "JPY"),
    )
}
