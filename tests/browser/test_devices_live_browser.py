"""The Devices page in Debian's Chromium: a number added in one tab appears in another with no reload, and
goes from it when removed (the pushed rows really parse and swap in a browser, not only as strings)."""

import re

import pytest

from tests.browser.test_dashboard_browser import TIMEOUT, _sign_in

pytestmark = pytest.mark.browser


def test_a_number_added_and_removed_in_one_tab_shows_in_another(asgi_server, chromium):
    base = asgi_server.url
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT)
    watching = _sign_in(context, asgi_server)
    watching.add_init_script("document.addEventListener('htmx:wsOpen', () => { window.__wsOpen = true; });")
    watching.goto(f"{base}/dashboard/")
    watching.wait_for_function("() => window.__wsOpen === true")
    watching.evaluate("window.__sameDocument = true")

    acting = context.new_page()
    acting.goto(f"{base}/dashboard/")
    acting.fill("input[name=name]", "Added in the other tab")
    acting.click("#add-device")
    acting.wait_for_url(re.compile(r".*/dashboard/devices/\d+/$"))
    device_id = int(re.search(r"/devices/(\d+)/$", acting.url).group(1))

    row = watching.wait_for_selector(f"#device-rows > #device-{device_id}-row")
    assert "Added in the other tab" in row.inner_text()
    assert watching.locator(f"#device-{device_id}-status").count() == 1
    assert watching.locator("#devices-empty").count() == 0
    assert watching.evaluate("window.__sameDocument === true"), "the page reloaded"

    acting.click("#remove-device summary")  # the confirmation says what goes
    assert "This cannot be undone" in acting.inner_text("[data-removal]")
    acting.click("form[action$='/remove/'] button")
    acting.wait_for_url(re.compile(r".*/dashboard/$"))
    watching.wait_for_selector(f"#device-{device_id}-row", state="detached")
    assert watching.evaluate("window.__sameDocument === true"), "the page reloaded"
    context.close()


# Every htmx error the page reports (htmx logs each to the console too; htmx:oobErrorNoTarget is one of them),
# and how many live pushes it has swapped.
WATCH_HTMX = """
window.__htmxErrors = []; window.__pushes = 0;
document.addEventListener('htmx:error', (e) => {
  const d = e.detail && e.detail.errorInfo ? e.detail.errorInfo : {};
  const what = d.content && d.content.outerHTML ? d.content.outerHTML.slice(0, 160) : '';
  window.__htmxErrors.push((d.error || 'htmx:error') + ' ' + what);
});
document.addEventListener('htmx:wsAfterMessage', () => { window.__pushes++; });
document.addEventListener('htmx:wsOpen', () => { window.__wsOpen = true; });
"""


def test_live_events_cause_no_htmx_errors_on_numbers_inbox_and_conversation(asgi_server, chromium):
    """The socket pushes every event of the organization to each page; none may make htmx report an error
    (a fragment for an element the page does not have is htmx:oobErrorNoTarget) as messages arrive and the
    number reconnects."""
    base = asgi_server.url
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT)
    console_errors = []
    context.on(
        "console",
        lambda m: (
            console_errors.append(f"{m.page.url if m.page else '?'}: {m.text}")
            if m.type == "error" and "htmx" in m.text.lower()
            else None
        ),
    )
    context.add_init_script(WATCH_HTMX)
    acting = _sign_in(context, asgi_server)
    acting.goto(f"{base}/dashboard/")
    acting.fill("input[name=name]", "No stray fragments")
    acting.click("#add-device")  # adds and starts linking: the QR code is on the page it lands on
    acting.wait_for_url(re.compile(r".*/dashboard/devices/\d+/$"))
    device_id = int(re.search(r"/devices/(\d+)/$", acting.url).group(1))
    acting.wait_for_selector(f"#device-{device_id}-link figure.qr svg")
    acting.wait_for_function("() => window.__wsOpen === true")  # the QR came with the page, not the socket
    phone = context.new_page()
    phone.goto(f"{base}/dashboard/sandbox/")
    phone.click(f"#sandbox-phone-{device_id} #sandbox-scan")
    acting.wait_for_selector(f'#device-{device_id}-status[data-status="connected"]')

    def peer_says(text):
        phone.goto(f"{base}/dashboard/sandbox/")
        phone.fill(f"#sandbox-phone-{device_id} input[name=text]", text)
        phone.click(f"#sandbox-phone-{device_id} #sandbox-peer-send")
        phone.wait_for_selector(".flash-success")

    peer_says("Hello before the pages open")
    inbox = context.new_page()
    inbox.goto(f"{base}/dashboard/devices/{device_id}/chats/")
    row = inbox.wait_for_selector(".chat-row:has-text('Hello before the pages open')")
    chat_id = int(re.search(r"chat-(\d+)-row", row.get_attribute("id")).group(1))
    conversation = context.new_page()
    conversation.goto(f"{base}/dashboard/devices/{device_id}/chats/{chat_id}/")
    numbers = context.new_page()
    numbers.goto(f"{base}/dashboard/")
    watched = (numbers, inbox, conversation)
    for page in watched:
        page.wait_for_function("() => window.__wsOpen === true")

    peer_says("A message while three pages watch")
    conversation.wait_for_selector(f"#chat-{chat_id}-messages :text('A message while three pages watch')")
    inbox.wait_for_selector(f"#chat-{chat_id}-row:has-text('A message while three pages watch')")
    numbers.wait_for_function("() => window.__pushes >= 1")  # the message's fragments reached it too

    before = [page.evaluate("window.__pushes") for page in watched]
    acting.click("form[action$='/reconnect/'] button")  # status pushes: disconnected, connected
    numbers.wait_for_selector(f'#device-{device_id}-status[data-status="connected"]')
    for page, count in zip(watched, before, strict=True):
        page.wait_for_function(f"() => window.__pushes > {count}")

    names = ("numbers", "inbox", "conversation")
    errors = {name: page.evaluate("window.__htmxErrors") for name, page in zip(names, watched, strict=True)}
    assert not any(errors.values()), errors
    assert not console_errors, console_errors
    context.close()
