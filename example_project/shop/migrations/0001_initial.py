import django.db.models.deletion
import uuid

import swapper
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        swapper.dependency("paygate", "Payment"),
    ]

    operations = [
        migrations.CreateModel(
            name='Order',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('product', models.CharField(max_length=100)),
                ('amount', models.PositiveBigIntegerField(help_text="In the currency's minor unit.")),
                ('currency', models.CharField(max_length=3)),
                ('email', models.EmailField(blank=True, max_length=254)),
                ('status', models.CharField(choices=[('new', 'Awaiting payment'), ('paid', 'Paid'), ('refunded', 'Refunded')], default='new', max_length=16)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('paid_at', models.DateTimeField(blank=True, null=True)),
                ('payment', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=swapper.get_model_name("paygate", "Payment"))),
            ],
            options={
                'ordering': ('-created_at',),
            },
        ),
    ]
