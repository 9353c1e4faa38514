from __future__ import annotations

from django.contrib import admin

from shop.models import Order


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("product", "total", "status", "email", "created_at")
    list_filter = ("status",)
    readonly_fields = ("id", "payment", "created_at", "paid_at")
