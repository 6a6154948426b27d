"""Stored media in Debian's Chromium: a contact's HTML, SVG, XHTML, XML or PDF file (each claiming to be a
picture, each trying to call /stolen) is only downloaded, never rendered on our origin; a real picture is
shown inline, inside the conversation and on its own. The pages hold to the Content-Security-Policy."""

import base64
import json

import pytest
from playwright.sync_api import Error as PlaywrightError

from tests.browser.test_dashboard_browser import TIMEOUT, _sign_in
from tests.pages.test_media_download import ACTIVE

PNG = base64.b64decode(  # one pixel: a picture Chromium really decodes
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)

pytestmark = pytest.mark.browser

SEED = """
import json
from django.utils import timezone
from accounts.models import Organization
from messaging.models import Chat, Device, Message
from messaging.services.downloads import store_media

files = json.loads(FILES)
org = Organization.objects.get(slug="browser-org")
device = Device.objects.create(organization=org, name="Media phone", status="new")
chat = Chat.objects.create(organization=org, device=device, jid="905550001122@s.whatsapp.net", name="Mallory")
urls = {}
for name, (kind, hexdata) in files.items():
    message = Message.objects.create(
        organization=org, device=device, chat=chat, wa_id="3EB0MEDIA" + name.upper(), sender_jid=chat.jid,
        kind=kind, media_filename=name + ".png", media_mime="image/png", status="received",
        timestamp=timezone.now(),
    )
    store_media(message, bytes.fromhex(hexdata))
    urls[name] = f"/dashboard/devices/{device.pk}/chats/{chat.pk}/messages/{message.pk}/download/"
urls["conversation"] = f"/dashboard/devices/{device.pk}/chats/{chat.pk}/"
print(json.dumps(urls))
"""


def test_a_contacts_active_files_are_downloaded_never_rendered(asgi_server, chromium):
    files = {name: ("document", data.hex()) for name, (data, _) in ACTIVE.items()}
    files["picture"] = ("image", PNG.hex())
    urls = json.loads(asgi_server.run_in_server(f"FILES = {json.dumps(files)!r}\n" + SEED))
    base = asgi_server.url
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.set_default_timeout(TIMEOUT)
    stolen = []
    context.on("request", lambda r: stolen.append(r.url) if "/stolen" in r.url else None)
    page = _sign_in(context, asgi_server)

    # The conversation shows the picture and offers each file for download, under the page's policy.
    page.goto(base + urls["conversation"])
    picture = page.wait_for_selector(f"img.msg-media[src='{urls['picture']}']")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=picture)
    assert page.locator("a.msg-download").count() == len(files)

    # Opened on its own, each active file is a download: Chromium never makes a document of it.
    for name in ACTIVE:
        with page.expect_download() as started:
            try:
                page.goto(base + urls[name])
            except PlaywrightError as exc:  # navigating to an attachment ends in its download
                assert "Download is starting" in str(exc), exc
        download = started.value
        assert download.suggested_filename == f"{name}.png"
        assert download.path().read_bytes() == ACTIVE[name][0]
    # The picture is shown as itself.
    response = page.goto(base + urls["picture"])
    assert response.headers["content-type"] == "image/png"
    page.wait_for_function("() => document.images.length === 1 && document.images[0].naturalWidth > 0")
    assert stolen == []
    context.close()
