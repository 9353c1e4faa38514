# The admin's staff actions: capture, cancel and sync a payment.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("paygate", "0002_dispute_inquiry"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="payment",
            options={
                "ordering": ("-created_at",),
                "permissions": [
                    ("capture_payment", "Can capture payments"),
                    ("cancel_payment", "Can cancel payments"),
                    ("sync_payment", "Can sync payments from their provider"),
                ],
                "verbose_name": "payment",
                "verbose_name_plural": "payments",
            },
        ),
    ]
