"""The endpoint remembers since when it fails (pausing goes by time, not attempts) and when to probe it."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0009_faults_gateway_idempotency_keys"),
    ]

    operations = [
        migrations.AddField(
            model_name="webhookendpoint",
            name="failing_since",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="webhookendpoint",
            name="next_probe_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
