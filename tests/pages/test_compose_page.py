"""Compose: operators only, every kind's form, errors next to the field, queued when the number is offline."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from messaging.models import Message

KINDS = ["text", "image", "audio", "document", "video", "sticker", "contact", "link", "location", "poll"]


@pytest.mark.parametrize("who", ["owner_client", "operator_client"])
@pytest.mark.parametrize("kind", KINDS)
def test_compose_renders_each_kind_for_those_who_may_send(request, who, kind, device):
    client = request.getfixturevalue(who)
    response = client.get(reverse("messaging:compose", args=[device.pk]), {"kind": kind})
    assert response.status_code == 200
    body = response.content.decode()
    assert f'name="kind" value="{kind}"' in body
    if kind in ("image", "video", "audio", "document", "sticker"):
        assert 'type="file"' in body and 'id="upload-progress"' in body


def test_viewer_may_not_compose(viewer_client, device):
    assert viewer_client.get(reverse("messaging:compose", args=[device.pk])).status_code == 403
    response = viewer_client.post(
        reverse("messaging:compose", args=[device.pk]), {"kind": "text", "to": "905551112233", "text": "hi"}
    )
    assert response.status_code == 403
    assert not Message.objects.exists()


def test_another_organizations_number_is_404(owner_client, other_device):
    assert owner_client.get(reverse("messaging:compose", args=[other_device.pk])).status_code == 404
    response = owner_client.post(
        reverse("messaging:compose", args=[other_device.pk]),
        {"kind": "text", "to": "905551112233", "text": "x"},
    )
    assert response.status_code == 404
    assert not Message.objects.exists()


def _errors(body: str) -> set[str]:
    import re

    return set(re.findall(r'class="field-error" data-field="([a-z_]+)"', body))


@pytest.mark.parametrize(
    "data, fields",
    [
        ({"kind": "text", "to": "905551112233", "text": ""}, {"text"}),
        ({"kind": "text", "to": "not a number", "text": "hi"}, {"to"}),
        ({"kind": "image", "to": "905551112233"}, {"file"}),
        ({"kind": "contact", "to": "905551112233", "contact_name": "Ali"}, {"contact_phone"}),
        ({"kind": "link", "to": "905551112233", "link": "no link"}, {"link"}),
        ({"kind": "location", "to": "905551112233", "latitude": "100", "longitude": "20"}, {"latitude"}),
        ({"kind": "poll", "to": "905551112233", "question": "Q?", "options": "only one"}, {"options"}),
        (
            {"kind": "poll", "to": "905551112233", "question": "", "options": "a\nb", "max_answer": "5"},
            {"question", "max_answer"},
        ),
    ],
)
def test_bad_input_is_shown_next_to_its_field(operator_client, device, data, fields):
    response = operator_client.post(
        reverse("messaging:compose", args=[device.pk]), data, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert _errors(body) == fields, body
    assert 'id="compose-form"' in body and "<html" not in body  # just the form, swapped in place
    assert not Message.objects.exists()


def test_a_file_of_the_wrong_type_or_size_is_refused(operator_client, device, settings):
    url = reverse("messaging:compose", args=[device.pk])
    wrong = SimpleUploadedFile("x.txt", b"hello", "text/plain")
    body = operator_client.post(url, {"kind": "image", "to": "905551112233", "file": wrong}).content.decode()
    assert _errors(body) == {"file"}
    settings.API_MEDIA_MAX_BYTES = {"sticker": 10}  # the same limits as the API's
    big = SimpleUploadedFile("s.webp", b"RIFF" + b"\0" * 50, "image/webp")
    body = operator_client.post(url, {"kind": "sticker", "to": "905551112233", "file": big}).content.decode()
    assert _errors(body) == {"file"} and "too large: at most 10" in body
    assert not Message.objects.exists()


def test_a_file_is_judged_by_its_content_not_by_its_declared_type(operator_client, device):
    """As in the API: a text file said to be a PNG is refused; a PNG said to be anything is sent as a PNG."""
    url = reverse("messaging:compose", args=[device.pk])
    disguised = SimpleUploadedFile("x.png", b"just some text", "image/png")
    body = operator_client.post(
        url, {"kind": "image", "to": "905551112233", "file": disguised}
    ).content.decode()
    assert _errors(body) == {"file"} and "content is not a valid image" in body
    assert not Message.objects.exists()

    png = SimpleUploadedFile("photo", b"\x89PNG\r\n\x1a\n" + b"\0" * 32, "application/octet-stream")
    operator_client.post(url, {"kind": "image", "to": "905551112233", "file": png})
    message = Message.objects.get()
    assert (message.kind, message.media_mime, message.media_size) == ("image", "image/png", 40)


def test_a_text_to_an_offline_number_is_queued_not_lost(operator_client, device):
    response = operator_client.post(
        reverse("messaging:compose", args=[device.pk]),
        {"kind": "text", "to": "+90 555 111 22 33", "text": "later is fine", "is_forwarded": "on"},
        HTTP_HX_REQUEST="true",
    )
    body = response.content.decode()
    assert 'data-status="queued"' in body
    message = Message.objects.get()
    assert (
        message.status == "queued"
        and message.is_forwarded
        and message.chat.jid == "905551112233@s.whatsapp.net"
    )


# ------------------------------------------------------------------ media by URL


PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


@pytest.fixture
def media_server(settings):
    """A plain HTTP server on 127.0.0.1 serving a few files (our own address: private targets allowed)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    files = {
        "/pic.png": ("image/png", PNG),
        "/notes.txt": ("text/plain", b"just text"),
        "/big.webp": ("image/webp", b"RIFF" + b"\0" * (2 * 1024 * 1024)),
        "/empty.png": ("image/png", b""),
        "/report": ("application/octet-stream", b"%PDF-1.4 report"),
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path not in files:
                self.send_error(404)
                return
            content_type, body = files[self.path]
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _compose(client, device, **data):
    response = client.post(
        reverse("messaging:compose", args=[device.pk]), {"to": "905551112233", **data}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    return response.content.decode()


def _error_text(body: str, field: str) -> str:
    import re

    return " ".join(re.findall(rf'class="field-error" data-field="{field}">([^<]*)<', body))


def test_media_kinds_offer_an_upload_or_a_url(operator_client, device):
    body = operator_client.get(
        reverse("messaging:compose", args=[device.pk]), {"kind": "video"}
    ).content.decode()
    assert (
        'type="file" name="file"' in body
        and 'type="url" name="media_url"' in body
        and "or the file&#x27;s URL" in body
    )


def test_an_image_by_url_is_fetched_and_queued(operator_client, device, media_server):
    body = _compose(
        operator_client, device, kind="image", media_url=f"{media_server}/pic.png", caption="from the web"
    )
    assert "sent-result" in body and not _errors(body), body
    message = Message.objects.get(device=device, kind="image")
    assert message.caption == "from the web" and message.media_mime == "image/png"
    assert message.media_filename == "pic.png"


def test_a_document_by_url_takes_its_type_from_its_name_when_the_server_does_not_say(
    operator_client, device, media_server
):
    body = _compose(operator_client, device, kind="document", media_url=f"{media_server}/report")
    assert "sent-result" in body, body
    assert Message.objects.get(device=device, kind="document").media_size == len(b"%PDF-1.4 report")


@pytest.mark.parametrize(
    "path, kind, says",
    [
        ("/missing.png", "image", "The URL answered 404."),
        ("/notes.txt", "image", "Image messages cannot carry text/plain files."),
        ("/big.webp", "sticker", "The file is too large: at most 1.0\xa0MB for this kind."),
        ("/empty.png", "image", "The URL answered with an empty file."),
    ],
)
def test_a_media_url_that_fails_is_said_next_to_the_url(
    operator_client, device, media_server, path, kind, says
):
    body = _compose(operator_client, device, kind=kind, media_url=f"{media_server}{path}")
    assert _errors(body) == {"media_url"} and says in _error_text(body, "media_url"), body
    assert f'value="{media_server}{path}"' in body  # the input is kept
    assert not Message.objects.exists()


def test_a_file_and_a_url_together_are_refused(operator_client, device):
    upload = SimpleUploadedFile("a.png", PNG, "image/png")
    body = _compose(operator_client, device, kind="image", file=upload, media_url="https://example.com/a.png")
    assert _errors(body) == {"media_url"} and "Give a file or a URL, not both." in body
    assert not Message.objects.exists()


def test_neither_a_file_nor_a_url_is_refused(operator_client, device):
    body = _compose(operator_client, device, kind="audio")
    assert _errors(body) == {"file"} and "Upload a file, or give its URL below." in body


def test_a_url_to_a_private_address_is_refused_without_fetching(operator_client, device, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    for url in ("http://127.0.0.1:9/pic.png", "http://10.0.0.5/pic.png", "http://[::1]/pic.png"):
        body = _compose(operator_client, device, kind="image", media_url=url)
        assert "Private, loopback and link-local addresses are not allowed." in _error_text(
            body, "media_url"
        ), body
    body = _compose(operator_client, device, kind="image", media_url="ftp://example.com/pic.png")
    assert _errors(body) == {"media_url"}
    assert not Message.objects.exists()


def test_media_url_errors_speak_turkish(operator_client, device):
    upload = SimpleUploadedFile("a.png", PNG, "image/png")
    response = operator_client.post(
        reverse("messaging:compose", args=[device.pk]),
        {"to": "905551112233", "kind": "image", "file": upload, "media_url": "https://example.com/a.png"},
        HTTP_HX_REQUEST="true",
        HTTP_ACCEPT_LANGUAGE="tr",
    )
    assert "Bir dosya ya da bir URL verin, ikisini birden değil." in response.content.decode()


def test_a_viewer_cannot_make_the_server_fetch_a_url(viewer_client, device, media_server, monkeypatch):
    from messaging import safe_fetch

    for name in ("fetch_url", "fetch_to_file"):
        monkeypatch.setattr(safe_fetch, name, lambda *a, **k: pytest.fail("a viewer made the server fetch"))
    response = viewer_client.post(
        reverse("messaging:compose", args=[device.pk]),
        {"to": "905551112233", "kind": "image", "media_url": f"{media_server}/pic.png"},
    )
    assert response.status_code == 403 and not Message.objects.exists()


def test_another_organizations_number_cannot_be_sent_media_by_url(owner_client, other_device, media_server):
    response = owner_client.post(
        reverse("messaging:compose", args=[other_device.pk]),
        {"to": "905551112233", "kind": "image", "media_url": f"{media_server}/pic.png"},
    )
    assert response.status_code == 404 and not Message.objects.exists()


def test_the_recipient_picker_offers_chats_and_contacts_by_name(
    operator_client, device, django_assert_max_num_queries
):
    from messaging.models import Contact
    from tests.pages.conftest import make_chat

    make_chat(device, name="Ayşe Yılmaz", jid="905551112233@s.whatsapp.net")
    make_chat(device, name="Support team", jid="120363000000000009@g.us")
    for i in range(30):
        Contact.objects.create(
            organization=device.organization,
            device=device,
            jid=f"9055577{i:05d}@s.whatsapp.net",
            push_name=f"P{i}",
        )
    with django_assert_max_num_queries(14):
        body = operator_client.get(reverse("messaging:compose", args=[device.pk])).content.decode()
    assert 'list="recipients"' in body and '<datalist id="recipients">' in body
    assert '<option value="905551112233">Ayşe Yılmaz · +90 555 111 22 33</option>' in body
    assert '<option value="120363000000000009@g.us">Support team</option>' in body
    assert "P29 · +90 555 770 00 29" in body
    # Typing a number nobody knows still sends (the picker only suggests).
    response = operator_client.post(
        reverse("messaging:compose", args=[device.pk]), {"kind": "text", "to": "905559998877", "text": "hi"}
    )
    assert (
        response.status_code in (200, 302)
        and Message.objects.filter(chat__jid="905559998877@s.whatsapp.net").exists()
    )


def test_a_send_that_fails_at_once_is_an_error_and_keeps_the_text(operator_client, device, monkeypatch):
    from tests.pages.conftest import make_chat, make_message

    failed = make_message(
        make_chat(device), from_me=True, status="failed", text="x", error="number is banned"
    )
    monkeypatch.setattr("messaging.services.outbox.queue_message", lambda **kwargs: failed)
    body = operator_client.post(
        reverse("messaging:compose", args=[device.pk]),
        {"kind": "text", "to": "905551112233", "text": "keep this text"},
        HTTP_HX_REQUEST="true",
    ).content.decode()
    assert 'class="flash-error sent-result" role="alert"' in body and "number is banned" in body
    assert "keep this text" in body
