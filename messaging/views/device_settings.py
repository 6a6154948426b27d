"""A number's Settings tab: decline incoming calls (with a reply text), and the proxy it connects through."""

from __future__ import annotations

from django import forms
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from accounts.tenancy import member_required
from messaging.views.common import (
    WRITE_ERRORS,
    done,
    error_text,
    field_errors,
    org_device,
    page_context,
    service,
)
from messaging.views.devices import sandbox_enabled

SETTINGS = "messaging.services.device_settings"


class SettingsForm(forms.Form):
    reject_calls = forms.BooleanField(label=gettext_lazy("Decline incoming calls"), required=False)
    reject_call_message = forms.CharField(
        label=gettext_lazy("Reply to a declined caller"), required=False, max_length=1000
    )
    proxy_url = forms.CharField(label=gettext_lazy("Proxy"), required=False, max_length=500)


def _page(request, device, form, *, status: int = 200):
    context = page_context(request, device=device, form=form, sandbox=sandbox_enabled())
    if context["sandbox"]:
        from messaging.proxy_url import mask

        recorded = service("messaging.whatsapp.sandbox").recorded_proxy(device.pk)
        context["recorded_proxy"] = None if recorded is None else mask(recorded)
    return render(request, "messaging/device_settings.html", context, status=status)


@member_required()
@require_GET
def device_settings(request, device_id: int):
    device = org_device(request, device_id)
    return _page(request, device, SettingsForm(initial=service(SETTINGS).device_settings(device)))


@member_required(write=True)
@require_POST
def device_settings_save(request, device_id: int):
    device = org_device(request, device_id)
    form = SettingsForm(request.POST)
    if form.is_valid():
        try:
            service(SETTINGS).update_device_settings(
                organization=request.organization, device=device, actor=request.user, **form.cleaned_data
            )
        except WRITE_ERRORS as exc:
            errors = field_errors(exc) if hasattr(exc, "error_dict") else {"__all__": [error_text(exc)]}
            for field, messages in errors.items():
                for message in messages:
                    form.add_error(field if field in form.fields else None, message)
        else:
            return done(request, _("Settings saved."), reverse("messaging:device_settings", args=[device.pk]))
    return _page(request, device, form, status=400)
