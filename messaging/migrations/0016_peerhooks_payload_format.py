from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0015_calls_settings"),
    ]

    operations = [
        migrations.AddField(
            model_name="webhookendpoint",
            name="payload_format",
            field=models.CharField(
                choices=[
                    ("waportal", "waportal (ours)"),
                    ("peer", "go-whatsapp-web-multidevice (the reference server)"),
                ],
                default="waportal",
                max_length=10,
                verbose_name="payload format",
            ),
        ),
    ]
