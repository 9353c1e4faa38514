# The admin's staff actions (capture, cancel and sync a payment) and the
# analytics dashboard's view permission (a model without a table).

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("paygate", "0003_payable"),
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
        migrations.CreateModel(
            name="Analytics",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
            ],
            options={
                "verbose_name": "analytics",
                "verbose_name_plural": "analytics",
                "managed": False,
                "default_permissions": ("view",),
            },
        ),
    ]
