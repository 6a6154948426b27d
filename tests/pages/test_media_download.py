"""Downloads of a message's media (dashboard and API, one helper): a file that can carry a script (HTML, SVG,
XHTML, XML, PDF) is never served so that it renders on our origin, whatever its sender said it was; the
stored type comes from the bytes. The browser proof is in tests/browser/test_media_browser.py."""

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from messaging import events
from messaging.models import Message
from messaging.services import downloads, media
from messaging.whatsapp import protocol
from tests.api.conftest import ApiClient
from tests.pages.conftest import make_chat, make_message

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
# Each would run `fetch("/stolen")` if a browser rendered it on our origin.
ACTIVE = {
    "html": (b"<!DOCTYPE html><html><body><script>fetch('/stolen')</script></body></html>", "text/html"),
    "svg": (
        b'<svg xmlns="http://www.w3.org/2000/svg" onload="fetch(\'/stolen\')"><script>fetch("/stolen")'
        b"</script></svg>",
        "image/svg+xml",
    ),
    "xhtml": (
        b'<?xml version="1.0"?>\n<html xmlns="http://www.w3.org/1999/xhtml"><body><script>fetch("/stolen")'
        b"</script></body></html>",
        "application/xhtml+xml",
    ),
    "xml": (
        b'<?xml version="1.0"?>\n<x:script xmlns:x="http://www.w3.org/1999/xhtml">fetch("/stolen")</x:script>',
        "application/xml",
    ),
    "pdf": (
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/OpenAction<</S/JavaScript/JS(app.launchURL('/stolen'))>>>>endobj\n"
        b"trailer<</Root 1 0 R>>\n%%EOF\n",
        "application/pdf",
    ),
}


def stored_message(chat, data: bytes, *, kind="document", filename="photo.png", claimed="image/png"):
    """A received message whose sender claimed `claimed` and `filename`, its bytes stored."""
    message = make_message(chat, text="", kind=kind, media_filename=filename, media_mime=claimed)
    downloads.store_media(message, data)
    return message


def dashboard_url(message):
    return reverse("messaging:message_download", args=[message.device_id, message.chat_id, message.pk])


def assert_never_rendered(response, data: bytes):
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == data  # the file itself, unchanged
    assert response["Content-Disposition"].startswith("attachment")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"].split(";")[0] == "sandbox"
    assert response["Content-Type"] not in media.INLINE_TYPES


@pytest.mark.parametrize("name", ACTIVE)
@pytest.mark.parametrize("claimed", ["image/png", "text/html"])
def test_an_active_file_is_only_ever_an_attachment_on_the_dashboard(owner_client, device, name, claimed):
    data, real = ACTIVE[name]
    message = stored_message(make_chat(device), data, claimed=claimed)
    message.refresh_from_db()
    assert message.media_mime == real  # what the bytes are, not what the sender said
    assert_never_rendered(owner_client.get(dashboard_url(message)), data)


@pytest.mark.parametrize("name", ACTIVE)
def test_an_active_file_is_only_ever_an_attachment_on_the_api(api_key, device, name):
    data, _ = ACTIVE[name]
    message = stored_message(make_chat(device), data, kind="image")  # claimed a picture, even by its kind
    response = ApiClient(api_key, device=device).get(f"/message/{message.wa_id}/download")
    assert_never_rendered(response, data)


def test_a_file_stored_before_types_came_from_bytes_is_served_by_its_bytes(owner_client, device):
    """Rows kept from before this change still carry the sender's word in media_mime."""
    data, _ = ACTIVE["html"]
    message = make_message(
        make_chat(device), text="", kind="document", media_filename="x.html", media_mime="text/html"
    )
    message.media.save("x.html", ContentFile(data), save=True)
    response = owner_client.get(dashboard_url(message))
    assert_never_rendered(response, data)
    assert response["Content-Type"] == "text/html"  # said truthfully; an attachment is never rendered


def test_a_real_picture_is_shown_inline_whatever_it_was_called(owner_client, device):
    message = stored_message(make_chat(device), PNG, kind="image", filename="x.html", claimed="text/html")
    message.refresh_from_db()
    assert message.media_mime == "image/png" and message.media.name.endswith(".png")
    response = owner_client.get(dashboard_url(message))
    assert response["Content-Type"] == "image/png"
    assert response["Content-Disposition"].startswith("inline")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"].startswith("sandbox")


def test_a_file_is_not_stored_under_its_senders_name(device):
    """A server that serves the media folder by extension (DEBUG, a proxy) must not find an .html there."""
    message = stored_message(make_chat(device), ACTIVE["html"][0], filename="invoice.html")
    assert message.media.name.endswith(".bin") and "invoice" not in message.media.name
    assert message.media_filename == "invoice.html"  # still offered to the user under its own name


def test_received_media_is_stored_under_the_type_of_its_bytes(device):
    """The event handler (either backend) stores what the download brought, typed by its bytes."""
    chat = make_chat(device)
    data, _ = ACTIVE["svg"]
    incoming = protocol.IncomingMessage(
        id="SVG1",
        chat=chat.jid,
        sender=chat.jid,
        kind=protocol.MessageKind.IMAGE,
        media=protocol.MediaInfo(mime_type="image/png", size=3, filename="cat.png", ref={"k": 1}),
    )
    outcomes = events.persist(protocol.MessageEvent(device_id=device.pk, message=incoming))
    (outcome,) = outcomes
    assert Message.objects.get(pk=outcome.media_message_id).media_mime == media.UNKNOWN_TYPE  # not yet known
    events._store_media(outcome.media_message_id, data)
    message = Message.objects.get(pk=outcome.media_message_id)
    assert (message.media_mime, message.media_size) == ("image/svg+xml", len(data))


@pytest.mark.django_db(transaction=True)
def test_the_sandboxs_received_media_is_typed_by_its_bytes_and_never_rendered(wa, org, api_key):
    device = wa.linked_device(org)
    peer = wa.sandbox.peer_phones("quiet")[0]
    sent = {}
    for name, (data, _) in ACTIVE.items():
        sent[name] = wa.sandbox.peer_send(
            from_phone=peer, to_jid=device.jid, kind="document", media=data, mime_type="image/png",
            filename=f"{name}.png",
        )  # fmt: skip
    api = ApiClient(api_key, device=device)
    for name, wa_id in sent.items():
        wa.wait_event("message", device=device, predicate=lambda d, wa_id=wa_id: d["id"] == wa_id)
        message = Message.objects.get(device=device, wa_id=wa_id)
        assert message.media_mime == ACTIVE[name][1], name
        assert_never_rendered(api.get(f"/message/{wa_id}/download"), ACTIVE[name][0])


def test_another_organizations_media_is_404_on_both_paths(owner_client, api_key, device, other_device):
    message = stored_message(make_chat(other_device), PNG, kind="image")
    assert owner_client.get(dashboard_url(message)).status_code == 404
    answer = ApiClient(api_key, device=device).get(f"/message/{message.wa_id}/download")
    assert answer.status_code == 404


def test_a_message_without_media_is_404(owner_client, device):
    message = make_message(make_chat(device), text="only words")
    assert owner_client.get(dashboard_url(message)).status_code == 404


@pytest.mark.parametrize(
    ("data", "filename", "mime"),
    [
        (b"PK\x03\x04" + b"\0" * 40, "report.docx", media.ZIP_TYPES[".docx"]),
        (b"PK\x03\x04" + b"\0" * 40, "x.html", "application/zip"),
        (b"name,age\nAyse,30\n", "people.csv", "text/csv"),
        ("Merhaba dünya\n".encode(), "note.html", "text/plain"),
        (b"\x00\x01\x02garbage", "x.pdf", media.UNKNOWN_TYPE),
        (b"\xef\xbb\xbf  <HTML><script>x</script>", "a.txt", "text/html"),
        (b"   \n<svg><script>x</script></svg>", "a.txt", "image/svg+xml"),
        (b"junk before the header %PDF-1.7\n", "a.txt", "application/pdf"),
    ],
)
def test_identify_reads_the_bytes_and_uses_the_name_only_to_refine(data, filename, mime):
    assert media.identify(data, "document", filename) == mime


def test_a_member_cannot_send_markup_under_another_name():
    """/send/file and the compose page share media.check: an HTML or SVG document goes (and is kept) as
    what it is, and an SVG is no picture."""
    data, _ = ACTIVE["svg"]
    assert media.check(data, "document", declared="image/png", filename="cat.png")[0] == "image/svg+xml"
    with pytest.raises(media.MediaRefused) as refused:
        media.check(data, "image", declared="image/png")
    assert refused.value.found == "image/svg+xml"


def test_a_senders_file_name_cannot_break_the_answer(owner_client, device):
    message = stored_message(make_chat(device), PNG, kind="image", filename='../a"b\r\nSet-Cookie: x=1.png')
    response = owner_client.get(dashboard_url(message))
    assert response.status_code == 200 and "Set-Cookie" not in response.headers
    assert response["Content-Disposition"] == 'inline; filename="a\\"bSet-Cookie: x=1.png"'
