"""Compose: every kind of message the API sends, media by upload or URL, errors next to the field, through the outbox."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.shortcuts import render
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.tenancy import member_required
from messaging.selectors import recipients
from messaging.services import media
from messaging.views.common import WRITE_ERRORS, error_text, field_errors, org_device, page_context, service

KINDS = [
    ("text", gettext_lazy("Text")),
    ("image", gettext_lazy("Image")),
    ("audio", gettext_lazy("Audio")),
    ("document", gettext_lazy("File")),
    ("video", gettext_lazy("Video")),
    ("sticker", gettext_lazy("Sticker")),
    ("contact", gettext_lazy("Contact")),
    ("link", gettext_lazy("Link")),
    ("location", gettext_lazy("Location")),
    ("poll", gettext_lazy("Poll")),
]
# Kinds sent with a file; its size and type are checked by messaging.services.media, as the API does.
MEDIA_KINDS = ("image", "video", "audio", "document", "sticker")
# Field names of the outbox (queue_message) → the form field that shows its error.
ERROR_FIELDS = {
    "media": "file",
    "text": "text",
    "to": "to",
    "poll_question": "question",
    "poll_options": "options",
}


class ComposeForm(forms.Form):
    kind = forms.ChoiceField(choices=KINDS, initial="text")
    to = forms.CharField(label=gettext_lazy("To"), max_length=128)
    text = forms.CharField(
        label=gettext_lazy("Message"), required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    reply_to_id = forms.CharField(label=gettext_lazy("Reply to message ID"), required=False, max_length=128)
    is_forwarded = forms.BooleanField(label=gettext_lazy("Mark as forwarded"), required=False)
    file = forms.FileField(label=gettext_lazy("File"), required=False)
    media_url = forms.URLField(
        label=gettext_lazy("…or the file's URL"),
        required=False,
        max_length=2000,
        assume_scheme="https",
        widget=forms.URLInput(attrs={"placeholder": "https://"}),
    )
    caption = forms.CharField(label=gettext_lazy("Caption"), required=False, max_length=4096)
    view_once = forms.BooleanField(label=gettext_lazy("View once"), required=False)
    compress = forms.BooleanField(label=gettext_lazy("Compress"), required=False)
    link = forms.URLField(label=gettext_lazy("Link"), required=False, assume_scheme="https")
    contact_name = forms.CharField(label=gettext_lazy("Contact name"), required=False, max_length=200)
    contact_phone = forms.CharField(label=gettext_lazy("Contact phone"), required=False, max_length=32)
    latitude = forms.FloatField(label=gettext_lazy("Latitude"), required=False, min_value=-90, max_value=90)
    longitude = forms.FloatField(
        label=gettext_lazy("Longitude"), required=False, min_value=-180, max_value=180
    )
    question = forms.CharField(label=gettext_lazy("Question"), required=False, max_length=255)
    options = forms.CharField(
        label=gettext_lazy("Options, one per line"), required=False, widget=forms.Textarea(attrs={"rows": 4})
    )
    max_answer = forms.IntegerField(
        label=gettext_lazy("Answers allowed"), required=False, min_value=1, initial=1
    )

    def _need(self, *names):
        for name in names:
            if self.cleaned_data.get(name) in (None, ""):
                self.add_error(name, _("This field is required for this kind of message."))

    def clean(self):
        data = super().clean()
        kind = data.get("kind")
        if kind == "text":
            self._need("text")
        elif kind in MEDIA_KINDS:
            upload, url = data.get("file"), data.get("media_url")
            if upload and url:
                self.add_error("media_url", _("Give a file or a URL, not both."))
            elif url:
                if not self._errors:  # fetch only for a form that would otherwise be sent
                    self._fetch(url, kind)
            elif not upload:
                self.add_error("file", _("Upload a file, or give its URL below."))
            elif upload.size is not None and upload.size > media.max_bytes(kind):
                self.add_error("file", self._too_large(media.max_bytes(kind)))
            else:  # checked by its size and first bytes, sent as the file (on disk when large), not read
                self._accept("file", kind, upload, upload.content_type or "", upload.name or "")
        elif kind == "contact":
            self._need("contact_name", "contact_phone")
        elif kind == "link":
            self._need("link")
        elif kind == "location":
            self._need("latitude", "longitude")
        elif kind == "poll":
            self._need("question")
            options = [o.strip() for o in (data.get("options") or "").splitlines() if o.strip()]
            if len(options) < 2:
                self.add_error("options", _("A poll needs at least two options."))
            elif len(set(options)) != len(options):
                self.add_error("options", _("Options must differ."))
            data["poll_options"] = options
            if (data.get("max_answer") or 1) > max(len(options), 1):
                self.add_error("max_answer", _("At most as many answers as options."))
        return data

    file_to_send: tuple[object, str, str] | None = None  # (the file, content type, file name)
    fetched = False  # whether it came from the media URL (errors of the outbox then belong to that field)

    @staticmethod
    def _too_large(limit: int) -> str:
        return _("The file is too large: at most %(size)s for this kind.") % {"size": filesizeformat(limit)}

    def _accept(self, field: str, kind: str, data, declared: str, filename: str) -> None:
        """Keep the file to send if it may be sent as `kind` (by its size and its own first bytes), else say
        why next to `field`."""
        try:
            mime, filename = media.check(data, kind, declared=declared, filename=filename)
        except media.MediaRefused as refused:
            if refused.reason == "too_large":
                self.add_error(field, self._too_large(refused.limit))
            elif (
                refused.reason == "type" and refused.found and refused.found not in media.ALLOWED_TYPES[kind]
            ):
                # No article before either word: "a image", "a application/pdf" read wrong in English.
                self.add_error(
                    field,
                    _("%(kind)s messages cannot carry %(type)s files.")
                    % {"kind": dict(KINDS)[kind], "type": refused.found},
                )
            elif refused.reason == "type":  # said to be one, but its content is not
                self.add_error(
                    field,
                    _("This file's content is not a valid %(kind)s.")
                    % {"kind": str(dict(KINDS)[kind]).lower()},
                )
            else:
                self.add_error(field, _("The URL answered with an empty file."))
            return
        self.file_to_send = (data, mime, filename)

    def _fetch(self, url: str, kind: str) -> None:
        """Fetch a media URL the way the API does (safe_fetch: no private addresses, size and time capped)."""
        from messaging.safe_fetch import fetch_to_file

        limit = media.max_bytes(kind)
        timeout = float(getattr(settings, "API_MEDIA_FETCH_TIMEOUT", 20.0))
        try:
            data, content_type, filename = fetch_to_file(
                url, field="media_url", max_bytes=limit, timeout=timeout
            )
        except ValidationError as exc:
            codes = {e.code for errors in getattr(exc, "error_dict", {}).values() for e in errors}
            if "too_large" in codes:
                self.add_error("media_url", self._too_large(limit))
            else:
                for msg in field_errors(exc).get("media_url") or exc.messages:
                    self.add_error("media_url", msg)
            return
        self.fetched = True
        self._accept("media_url", kind, data, content_type, filename)

    def outgoing(self) -> dict:
        d = self.cleaned_data
        kind = d["kind"]
        out = {"to": d["to"], "kind": kind, "is_forwarded": d.get("is_forwarded", False)}
        if d.get("reply_to_id"):
            out["reply_to_id"] = d["reply_to_id"]
        if kind == "text":
            out["text"] = d["text"]
        elif kind in MEDIA_KINDS:
            data, mime_type, filename = self.file_to_send
            out.update(media=data, mime_type=mime_type, filename=filename)
            if kind in ("image", "video", "document"):
                out["caption"] = d.get("caption", "")
            if kind in ("image", "video"):
                out["view_once"] = d.get("view_once", False)
            if kind == "image":
                out["compress"] = d.get("compress", False)
        elif kind == "contact":
            out.update(contact_name=d["contact_name"], contact_phone=d["contact_phone"])
        elif kind == "link":
            out.update(text=d["link"], caption=d.get("caption", ""))
        elif kind == "location":
            out.update(latitude=d["latitude"], longitude=d["longitude"])
        elif kind == "poll":
            out.update(
                poll_question=d["question"],
                poll_options=d["poll_options"],
                poll_max_answer=d.get("max_answer") or 1,
            )
        return out


@member_required(write=True)
def compose(request, device_id: int):
    device = org_device(request, device_id)
    sent = None
    if request.method == "POST":
        form = ComposeForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                sent = service("messaging.services.outbox").queue_message(
                    organization=request.organization,
                    device=device,
                    outgoing=form.outgoing(),
                    actor=request.user,
                )
            except ValidationError as exc:
                for field, msgs in field_errors(exc).items():
                    target = ERROR_FIELDS.get(field, field if field in form.fields else None)
                    if target == "file" and form.fetched:
                        target = "media_url"
                    for msg in msgs:
                        form.add_error(target, msg)
            except WRITE_ERRORS as exc:  # WhatsApp refused or the worker timed out: show it, keep the input
                form.add_error(None, error_text(exc))
            else:
                # A send that failed at once keeps what was typed, to fix and send again.
                if sent.status != "failed":
                    kind = form.cleaned_data["kind"]
                    form = ComposeForm(initial={"kind": kind, "to": form.cleaned_data["to"]})
    else:
        kind = request.GET.get("kind", "text")
        form = ComposeForm(
            initial={
                "kind": kind if kind in dict(KINDS) else "text",
                "to": request.GET.get("to", ""),
                "reply_to_id": request.GET.get("reply_to", ""),
            }
        )
    kind = form["kind"].value() or "text"
    # The recipient field offers the number's chats and contacts by name (a <datalist>: searchable as one
    # types, and any other number can still be typed).
    form.fields["to"].widget.attrs["list"] = "recipients"
    context = page_context(
        request, device=device, form=form, kind=kind, kinds=KINDS, sent=sent, recipients=recipients(device)
    )
    if request.htmx and request.method == "POST":
        return render(request, "messaging/compose.html#form", context)
    if request.htmx and request.htmx.target == "compose-form":
        return render(request, "messaging/compose.html#form", context)
    return render(request, "messaging/compose.html", context)
