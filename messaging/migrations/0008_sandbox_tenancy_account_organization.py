"""Sandbox accounts remember the organization that linked them: one organization's number is not another's."""

import django.db.models.deletion
from django.db import migrations, models


def claim_linked_phones(apps, schema_editor):
    """A phone linked today belongs to the organization of its earliest linked device; devices of other
    organizations linked as it (through the flaw this closes) are unlinked: they read another's traffic."""
    SandboxAccount = apps.get_model("messaging", "SandboxAccount")
    SandboxSession = apps.get_model("messaging", "SandboxSession")
    owners: dict[str, int] = {}
    for phone, organization_id in SandboxSession.objects.order_by("created_at", "id").values_list(
        "phone", "device__organization_id"
    ):
        owners.setdefault(phone, organization_id)
    for phone, organization_id in owners.items():
        SandboxAccount.objects.filter(phone=phone, kind="phone").update(organization_id=organization_id)
        SandboxSession.objects.filter(phone=phone).exclude(device__organization_id=organization_id).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("messaging", "0007_exactly_once_sent_ids"),
    ]

    operations = [
        migrations.AddField(
            model_name="sandboxaccount",
            name="organization",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="accounts.organization",
            ),
        ),
        migrations.RunPython(claim_linked_phones, migrations.RunPython.noop),
    ]
