"""Dashboard pages of webhook endpoints (admins only): list, create, edit, secret, delivery log, redeliver, test;
and the paused-webhooks notice every page shows."""

from __future__ import annotations

import json

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.models import Role
from accounts.services import client_ip
from accounts.tenancy import member_required
from messaging import safe_fetch
from messaging.models import WEBHOOK_EVENTS, WebhookDeliveryStatus, WebhookFormat
from messaging.selectors import names_for
from messaging.webhooks import services

LOG_SIZE = 50

admin_required = member_required(Role.ADMIN)


class EndpointForm(forms.Form):
    # Not a URLField: its validator refuses single-label hosts (http://crm:8080/), which self-hosted installs
    # use; validate_public_url checks scheme, host and address instead.
    url = forms.CharField(label=gettext_lazy("URL"), max_length=500)
    description = forms.CharField(label=gettext_lazy("Description"), max_length=200, required=False)
    events = forms.MultipleChoiceField(
        label=gettext_lazy("Events"),
        choices=list(WEBHOOK_EVENTS.items()),
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": gettext_lazy("Choose at least one event.")},
    )
    devices = forms.ModelMultipleChoiceField(
        label=gettext_lazy("Devices"),
        queryset=None,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=gettext_lazy("None chosen: every number of the organization, including ones linked later."),
    )
    active = forms.BooleanField(label=gettext_lazy("Active"), required=False, initial=True)
    payload_format = forms.ChoiceField(
        label=gettext_lazy("Payload format"),
        choices=WebhookFormat.choices,
        initial=WebhookFormat.WAPORTAL,
        widget=forms.RadioSelect,
        required=False,  # not sent (a script's post): ours for a new endpoint, unchanged for an existing one
        help_text=gettext_lazy(
            "The shape of each request's JSON. Choose the reference server's (go-whatsapp-web-multidevice) if "
            "your receiver was written for it: its event names (message, message.ack, ...) and fields, "
            "device_id the number's JID, session_id our device id. Events it has no name for (connection, "
            "QR code, outbox status) come in the same envelope under our names. Signing, retries and the "
            "Idempotency-Key are the same in both. A change applies to events from then on."
        ),
        error_messages={
            "invalid_choice": gettext_lazy("Payload format: %(value)s is not one of the choices."),
        },
    )

    def __init__(self, *args, organization, **kwargs):
        super().__init__(*args, **kwargs)
        # Only this organization's numbers can be chosen (another's id is "not a valid choice").
        self.fields["devices"].queryset = organization.devices.order_by("created_at", "id")

    def clean_url(self):
        try:
            return safe_fetch.validate_public_url(self.cleaned_data["url"], field="url")
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["url"]) from None


def _endpoint(request, endpoint_id: int):
    """The current organization's endpoint, or 404 (another organization's does not exist here)."""
    return get_object_or_404(request.organization.webhook_endpoints, pk=endpoint_id)


def _service_kwargs(request) -> dict:
    return {"organization": request.organization, "actor": request.user, "ip_address": client_ip(request)}


def _form_values(form) -> dict:
    data = form.cleaned_data
    return {
        "url": data["url"],
        "description": data["description"],
        "events": data["events"],
        "devices": list(data["devices"]),
        "active": data["active"],
        "payload_format": data["payload_format"] or None,
    }


@admin_required
@require_GET
def endpoint_list(request):
    endpoints = request.organization.webhook_endpoints.prefetch_related("devices").order_by(
        "created_at", "id"
    )
    return render(
        request,
        "messaging/webhooks/list.html",
        {
            "endpoints": endpoints,
            "paused": [e for e in endpoints if e.is_paused and e.active],
            "events": WEBHOOK_EVENTS,
        },
    )


@admin_required
@require_http_methods(["GET", "POST"])
def endpoint_create(request):
    organization = request.organization
    if request.method == "POST":
        form = EndpointForm(request.POST, organization=organization)
        if form.is_valid():
            try:
                endpoint = services.create_endpoint(**_service_kwargs(request), **_form_values(form))
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, _("Webhook created. Its secret is shown below."))
                return redirect("webhooks:detail", endpoint_id=endpoint.pk)
    else:
        form = EndpointForm(
            organization=organization,
            initial={"active": True, "events": ["message"], "payload_format": WebhookFormat.WAPORTAL},
        )
    return render(request, "messaging/webhooks/form.html", {"form": form, "endpoint": None})


def _deliveries(endpoint, status: str = ""):
    deliveries = endpoint.deliveries.select_related("device").prefetch_related("attempt_log")
    if status in WebhookDeliveryStatus.values:
        deliveries = deliveries.filter(status=status)
    return list(deliveries.order_by("-created_at", "-id")[:LOG_SIZE])


def _about(deliveries, organization) -> dict[str, str]:
    """Put on each delivery what its event is about, from its body: `chat_jid` (the chat or group), `sender_jid`
    (who wrote or acted, when not the chat itself) and `event_label`; returns their names, looked up at once."""
    jids = set()
    for delivery in deliveries:
        try:
            payload = json.loads(delivery.body).get("payload") or {}
        except (ValueError, AttributeError):
            payload = {}
        payload = payload if isinstance(payload, dict) else {}
        chat = payload.get("chat_id") or payload.get("group_id") or ""
        sender = payload.get("from") or ""
        delivery.chat_jid = chat if isinstance(chat, str) else ""
        delivery.sender_jid = sender if isinstance(sender, str) and sender != chat else ""
        delivery.event_label = WEBHOOK_EVENTS.get(delivery.event, "")
        jids.update(j for j in (delivery.chat_jid, delivery.sender_jid) if j)
    return names_for(organization, jids)


@admin_required
@require_http_methods(["GET", "POST"])
def endpoint_detail(request, endpoint_id: int):
    endpoint = _endpoint(request, endpoint_id)
    status = request.GET.get("status", "")
    if request.method == "POST":
        form = EndpointForm(request.POST, organization=request.organization)
        if form.is_valid():
            try:
                services.update_endpoint(**_service_kwargs(request), endpoint=endpoint, **_form_values(form))
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, _("Webhook saved."))
                return redirect("webhooks:detail", endpoint_id=endpoint.pk)
    else:
        form = EndpointForm(
            organization=request.organization,
            initial={
                "url": endpoint.url,
                "description": endpoint.description,
                "events": endpoint.events,
                "devices": list(endpoint.devices.all()),
                "active": endpoint.active,
                "payload_format": endpoint.payload_format,
            },
        )
    deliveries = _deliveries(endpoint, status)
    context = {
        "endpoint": endpoint,
        "form": form,
        "deliveries": deliveries,
        "names": _about(deliveries, request.organization),
        "status": status,
        "statuses": WebhookDeliveryStatus.choices,
    }
    if request.htmx and request.GET.get("part") == "log":
        return render(request, "messaging/webhooks/detail.html#log", context)
    return render(request, "messaging/webhooks/detail.html", context)


@admin_required
@require_POST
def endpoint_rotate_secret(request, endpoint_id: int):
    endpoint = services.rotate_secret(**_service_kwargs(request), endpoint=_endpoint(request, endpoint_id))
    messages.success(request, _("A new secret was made. Update your receiver: the old one no longer signs."))
    return redirect("webhooks:detail", endpoint_id=endpoint.pk)


@admin_required
@require_POST
def endpoint_test(request, endpoint_id: int):
    endpoint = _endpoint(request, endpoint_id)
    services.send_test_event(**_service_kwargs(request), endpoint=endpoint)
    messages.success(request, _("A test event is on its way; it appears in the delivery log below."))
    return redirect("webhooks:detail", endpoint_id=endpoint.pk)


@admin_required
@require_POST
def endpoint_resume(request, endpoint_id: int):
    endpoint = services.resume_endpoint(**_service_kwargs(request), endpoint=_endpoint(request, endpoint_id))
    messages.success(request, _("Webhook resumed: deliveries start again."))
    return redirect("webhooks:detail", endpoint_id=endpoint.pk)


@admin_required
@require_POST
def endpoint_delete(request, endpoint_id: int):
    services.delete_endpoint(**_service_kwargs(request), endpoint=_endpoint(request, endpoint_id))
    messages.success(request, _("Webhook deleted."))
    return redirect("webhooks:list")


def _delivery(request, endpoint, delivery_id: int):
    return get_object_or_404(endpoint.deliveries.select_related("device", "redelivery_of"), pk=delivery_id)


@admin_required
@require_GET
def delivery_detail(request, endpoint_id: int, delivery_id: int):
    endpoint = _endpoint(request, endpoint_id)
    delivery = _delivery(request, endpoint, delivery_id)
    try:
        body = json.dumps(json.loads(delivery.body), indent=2, ensure_ascii=False)
    except ValueError:
        body = delivery.body
    return render(
        request,
        "messaging/webhooks/delivery.html",
        {
            "endpoint": endpoint,
            "delivery": delivery,
            "names": _about([delivery], request.organization),
            "body": body,
            "attempts": delivery.attempt_log.all(),
        },
    )


@admin_required
@require_POST
def delivery_redeliver(request, endpoint_id: int, delivery_id: int):
    endpoint = _endpoint(request, endpoint_id)
    delivery = _delivery(request, endpoint, delivery_id)
    again = services.redeliver(**_service_kwargs(request), delivery=delivery)
    messages.success(request, _("Redelivery queued."))
    return redirect("webhooks:delivery", endpoint_id=endpoint.pk, delivery_id=again.pk)


def paused_endpoints(organization):
    if organization is None:
        return []
    return list(organization.webhook_endpoints.filter(paused_at__isnull=False, active=True))


def paused_notice(request) -> dict:
    """Context processor: `paused_webhooks`, so any page (the base layout) can tell the organization."""
    return {"paused_webhooks": paused_endpoints(getattr(request, "organization", None))}
