# The admin's staff actions on the swapped payment model.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("testapp", "0002_payables"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="shoppayment",
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
