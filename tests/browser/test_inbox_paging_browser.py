"""The chat list loads its next page as it is scrolled to the end, without a click (issue 17 made a page 20 chats:
a screen and a half of the list)."""

import pytest

from tests.browser.test_support_dashboard_browser import TIMEOUT, _sign_in

pytestmark = pytest.mark.browser

SEED = """
from datetime import timedelta
from django.utils import timezone
from accounts.models import Organization
from messaging.models import Chat, Device
org = Organization.objects.get(slug="browser-org")
device = Device.objects.create(organization=org, name="Paging line", jid="905550009999@s.whatsapp.net",
                               phone="905550009999", status="disconnected")
now = timezone.now()
Chat.objects.bulk_create([
    Chat(organization=org, device=device, jid=f"9055500{i:05d}@s.whatsapp.net", name=f"Paged chat {i:02d}",
         last_message_at=now - timedelta(minutes=i), last_message_preview=f"preview {i}")
    for i in range(45)
])
print(device.pk)
"""


def test_the_chat_list_loads_more_as_it_is_scrolled(asgi_server, chromium):
    from messaging.views.inbox import CHATS_PER_PAGE as N

    device_id = asgi_server.run_in_server(SEED).strip()
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT)
    page = _sign_in(context, asgi_server.url, asgi_server.email, asgi_server.password)
    page.goto(f"{asgi_server.url}/dashboard/devices/{device_id}/chats/")
    page.wait_for_selector(".chat-row:has-text('Paged chat 00')")
    assert page.locator(".chat-row").count() == N  # the first page only: the list's end is out of sight

    for shown in (2 * N, 45):  # scrolled to the end, the next page comes; then the rest
        page.locator(".chat-row").last.scroll_into_view_if_needed()
        page.wait_for_function(f"() => document.querySelectorAll('.chat-row').length === {shown}")
    assert page.locator(".chat-row:has-text('Paged chat 44')").count() == 1
    assert page.locator("button.more").count() == 0  # nothing more to load
    names = page.eval_on_selector_all(".chat-row .chat-name", "els => els.map(e => e.textContent.trim())")
    assert len(set(names)) == 45  # no chat twice
    context.close()
