"""The dashboard a support team lives in (issue 16), in Chromium against a real server: the inbox live for
every chat (rows update and move to the top, opening clears the unread count, Enter sends), names instead of
JIDs, every main page at 1280 px and 390 px in English and Turkish (nothing wider than a phone, a header that
does not wrap, a menu that folds), the error pages, and what a viewer is told.

Screenshots go to test-output/screenshots/ (git-ignored); the run's summary names the folder."""

import re

import pytest

from tests.browser.conftest import SCREENSHOTS

pytestmark = pytest.mark.browser

TIMEOUT = 20_000  # ms; every wait is for an element, never a sleep
VIEWER_EMAIL, VIEWER_PASSWORD = "viewer@example.com", "a long viewer password"

# The header's items on one line: their vertical middles agree (a wrapped item sits a whole line lower).
HEADER_MIDDLES = """() => [...document.querySelectorAll('.site-nav > ul > li, .site-menu > ul > li')]
  .filter(e => e.offsetParent !== null)
  .map(e => { const r = e.getBoundingClientRect(); return Math.round(r.top + r.height / 2); })"""

# A text field + select + button group (create a key, invite someone): where each part sits and how wide it is.
FIELD_SELECT_BUTTON = """() => { const g = document.querySelector('fieldset.stack-on-phone'); if (!g) return null;
  const box = e => e.getBoundingClientRect();
  const [group, field, select, button] = [g, g.querySelector('input'), g.querySelector('select'), g.querySelector('button')].map(box);
  return {group: group.width, field: field.width, fieldTop: field.top, fieldBottom: field.bottom,
          selectTop: select.top, select: select.width, buttonTop: button.top}; }"""


def _sign_in(context, base, email, password):
    page = context.new_page()
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("form:has(input[name=password]) button[type=submit]")
    assert "/accounts/login/" not in page.url
    return page


def _link_a_number(page, phone, base, name):
    page.goto(f"{base}/dashboard/")
    page.fill("input[name=name]", name)
    page.click("#add-device")
    page.wait_for_url(re.compile(r".*/dashboard/devices/\d+/$"))
    device_id = int(re.search(r"/devices/(\d+)/$", page.url).group(1))
    page.click("#link-qr")
    page.wait_for_selector(f"#device-{device_id}-link figure.qr svg")
    phone.goto(f"{base}/dashboard/sandbox/")
    phone.click(f"#sandbox-phone-{device_id} #sandbox-scan")
    page.wait_for_selector(f'#device-{device_id}-status[data-status="connected"]')
    return device_id


def _peer_says(phone, device_id, peer, text):
    phone.select_option(f"#sandbox-phone-{device_id} select[name=from_phone]", peer)
    phone.fill(f"#sandbox-phone-{device_id} input[name=text]", text)
    phone.click(f"#sandbox-phone-{device_id} #sandbox-peer-send")
    phone.wait_for_selector(".flash-success")


def test_inbox_names_layouts_errors_and_roles(asgi_server, chromium):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    base = asgi_server.url
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT)
    page = _sign_in(context, base, asgi_server.email, asgi_server.password)
    phone = context.new_page()
    device_id = _link_a_number(page, phone, base, "Support line")

    def shot(p, name):
        p.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    # --- 1. The inbox is live for every chat ------------------------------------------------------------
    page.goto(f"{base}/dashboard/devices/{device_id}/chats/")
    page.wait_for_function("() => window.htmx !== undefined")
    page.evaluate("window.__sameDocument = true")
    phone.goto(f"{base}/dashboard/sandbox/")
    peers = phone.eval_on_selector_all(
        f"#sandbox-phone-{device_id} select[name=from_phone] option", "els => els.map(e => e.value)"
    )
    a, b = peers[0], peers[1]
    _peer_says(phone, device_id, a, "First from A")
    row_a = page.wait_for_selector(".chat-row:has-text('First from A')")
    row_a_id = row_a.get_attribute("id")
    _peer_says(phone, device_id, b, "Hello from B")
    page.wait_for_selector(".chat-row:first-child:has-text('Hello from B')")
    # A new message in an EXISTING chat: its row shows the new preview and count, and moves to the top.
    _peer_says(phone, device_id, a, "Second from A")
    page.wait_for_selector(f"#{row_a_id}:first-child:has-text('Second from A') [data-unread='2']")
    assert page.locator(f"#{row_a_id}").count() == 1
    assert page.evaluate("window.__sameDocument === true"), "the page reloaded"
    # Names, never raw JIDs: a row shows a name or a formatted number.
    names = page.eval_on_selector_all(".chat-row .chat-name", "els => els.map(e => e.textContent)")
    assert not any("@" in n for n in names), names
    shot(page, "01-inbox-rows-live-en-1280")

    # Opening a chat: the conversation on the right, its unread count gone, the list still there.
    page.click(f"#{row_a_id}")
    page.wait_for_selector("#conversation-pane .msg-in:has-text('Second from A')")
    page.wait_for_selector(f"#{row_a_id}:not(:has([data-unread]))")
    assert page.is_visible("#chat-list-body")
    assert not page.is_visible("#conversation-pane h2:has-text('@')")
    # Keyboard: Shift+Enter is a new line, Enter sends.
    box = page.locator("#send-form textarea[name=text]")
    box.click()
    box.type("Line one")
    box.press("Shift+Enter")
    box.type("line two")
    box.press("Enter")
    sent = page.wait_for_selector(".msg-out:has-text('Line one')")
    assert "line two" in sent.inner_text()
    page.wait_for_function("() => document.querySelector('#send-form textarea').value === ''")
    # A is the simulated echo peer: its answer comes first, or it could land after the next message and be the
    # row's preview in its place.
    page.wait_for_selector("#conversation-pane .msg-in:has-text('Echo: Line one')")
    # A message from A while the chat is open arrives in it.
    _peer_says(phone, device_id, a, "Third from A")
    page.wait_for_selector("#conversation-pane .msg-in:has-text('Third from A')")
    # ... and is read as it arrives: the row, preview updated, shows no unread count.
    page.wait_for_selector(f"#{row_a_id}:has-text('Third from A'):not(:has([data-unread]))")
    shot(page, "02-conversation-two-panes-en-1280")
    # Filters: unread only (B, never opened), then all again.
    page.click(".chat-filters a[data-filter=unread]")
    page.wait_for_selector(".chat-filters a[data-filter=unread][aria-current]")
    assert page.is_visible(".chat-row:has-text('Hello from B')")
    shot(page, "03-filter-unread-en-1280")
    assert page.evaluate("window.__sameDocument === true"), "the page reloaded"
    conversation_url = f"{base}/dashboard/devices/{device_id}/chats/{row_a_id.split('-')[1]}/"

    # --- 2, 3. Every main page at two widths and in two languages -----------------------------------------
    pages = {
        "numbers": "/dashboard/",
        "number": f"/dashboard/devices/{device_id}/",
        "inbox": f"/dashboard/devices/{device_id}/chats/",
        "conversation": conversation_url.removeprefix(base),
        "compose": f"/dashboard/devices/{device_id}/compose/",
        "profile": f"/dashboard/devices/{device_id}/profile/",
        "groups": "/dashboard/groups/",
        "groups-of-number": f"/dashboard/groups/{device_id}/",
        "sandbox": "/dashboard/sandbox/",
        "organization": "/accounts/organization/",
        "api-keys": "/accounts/api-keys/",
        "webhooks": "/dashboard/webhooks/",
        "audit-log": "/accounts/audit/",
        "not-found": "/dashboard/devices/999999/",
    }
    problems = []
    for language in ("en", "tr"):
        context.add_cookies([{"name": "django_language", "value": language, "url": base}])
        for width in (1280, 390):
            view = context.new_page()
            view.set_viewport_size({"width": width, "height": 900 if width > 400 else 844})
            for name, path in pages.items():
                view.goto(base + path)
                view.wait_for_selector("header .site-nav")
                assert view.evaluate("document.documentElement.lang") == language
                wide = view.evaluate("document.documentElement.scrollWidth")
                if wide > width:
                    problems.append(f"{language} {width}px {name}: the page is {wide}px wide")
                if width == 1280:
                    middles = view.evaluate(HEADER_MIDDLES)
                    if max(middles) - min(middles) > 12:
                        problems.append(f"{language} {width}px {name}: the header wraps ({middles})")
                parts = view.evaluate(FIELD_SELECT_BUTTON) if name in ("api-keys", "organization") else None
                if name in ("api-keys", "organization") and parts is None:
                    problems.append(f"{language} {width}px {name}: no field + select + button form")
                elif parts and width == 390:
                    # On a phone the field has the whole line; the select and the button go under it, the select
                    # wide enough for "Full access" or "Operatör" (they were cut to "Full acc", "Operatö").
                    if (
                        parts["field"] < parts["group"] - 2
                        or min(parts["selectTop"], parts["buttonTop"]) < parts["fieldBottom"]
                        or parts["select"] < 150
                    ):
                        problems.append(
                            f"{language} {width}px {name}: the form's field is squeezed ({parts})"
                        )
                elif parts and not (parts["fieldTop"] == parts["selectTop"] == parts["buttonTop"]):
                    problems.append(f"{language} {width}px {name}: the form is not on one line ({parts})")
                shot(view, f"10-{language}-{width}-{name}")
            if width == 390:
                # On a phone the menu folds; opened, everything is reachable, Sign out included.
                view.goto(base + pages["inbox"])
                assert not view.is_visible(".main-nav")
                view.click(".menu-button")
                view.wait_for_selector(".main-nav", state="visible")
                view.click(".account-menu summary")
                box = view.wait_for_selector("#sign-out", state="visible").bounding_box()
                assert box["x"] >= 0 and box["x"] + box["width"] <= width, box
                shot(view, f"11-{language}-{width}-menu-open")
            view.close()
    assert not problems, "\n".join(problems)

    # --- 5. A viewer is told what their role may do ------------------------------------------------------
    asgi_server.run_in_server(
        "from accounts.models import Membership, Organization, User\n"
        f"u = User.objects.create_user(email={VIEWER_EMAIL!r}, password={VIEWER_PASSWORD!r})\n"
        "Membership.objects.create(user=u, organization=Organization.objects.get(slug='browser-org'), role='viewer')\n"
    )
    viewer_context = chromium.new_context(viewport={"width": 390, "height": 844})
    viewer_context.set_default_timeout(TIMEOUT)
    viewer = _sign_in(viewer_context, base, VIEWER_EMAIL, VIEWER_PASSWORD)
    viewer.goto(conversation_url)
    viewer.wait_for_selector("[data-read-only-banner]")
    assert not viewer.is_visible("#send-form") and viewer.is_visible(".read-only-note")
    shot(viewer, "20-viewer-conversation-390")
    response = viewer.goto(f"{base}/dashboard/devices/{device_id}/compose/")
    assert response.status == 403
    viewer.wait_for_selector("[data-your-role]")
    assert viewer.evaluate("document.documentElement.scrollWidth") <= 390
    shot(viewer, "21-viewer-compose-forbidden-390")
    viewer_context.close()
    context.close()
