"""The inbox a support team lives in (issue 16), in Chromium against a real server: rows and the conversation's
title show the chat's picture (the initials where there is none, or where it fails to load), a row keeps the
name readable at 390 px, a conversation open on a LID chat follows it into the number's chat when WhatsApp
tells who it is (no reload, the half-written reply kept), and the audit log is a list of cards on a phone.

Screenshots go to test-output/screenshots/ (git-ignored): 30-* to 36-*."""

import re

import pytest

from tests.browser.conftest import SCREENSHOTS
from tests.browser.test_support_dashboard_browser import TIMEOUT, _link_a_number, _peer_says, _sign_in

pytestmark = pytest.mark.browser

# Every avatar <img> in the rows has finished: loaded (a picture, or the 1x1 pixel of "none") or removed.
AVATARS_SETTLED = """() => [...document.querySelectorAll('.chat-row .chat-avatar img')]
  .every(i => i.complete)"""


def _row_id(page, text):
    return page.wait_for_selector(f".chat-row:has-text('{text}')").get_attribute("id")


def test_pictures_phone_rows_lid_merge_and_audit_cards(asgi_server, chromium):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    base = asgi_server.url
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT)
    page = _sign_in(context, base, asgi_server.email, asgi_server.password)
    phone = context.new_page()
    device_id = _link_a_number(page, phone, base, "Pictures line")

    def shot(p, name):
        p.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    phone.goto(f"{base}/dashboard/sandbox/")
    peers = phone.eval_on_selector_all(
        f"#sandbox-phone-{device_id} select[name=from_phone] option", "els => els.map(e => e.value)"
    )
    # The seeded peers: the first shows its picture, the sixth hides it (privacy "nobody"), the fifth is quiet.
    pictured, hidden, quiet = peers[0], peers[5], peers[4]
    _peer_says(phone, device_id, hidden, "Hidden picture here")
    _peer_says(phone, device_id, pictured, "A picture is here")

    # --- 1. Pictures over initials, at 1280 px ----------------------------------------------------------
    inbox = f"{base}/dashboard/devices/{device_id}/chats/"
    page.goto(inbox)
    pictured_row = _row_id(page, "A picture is here")
    hidden_row = _row_id(page, "Hidden picture here")
    page.wait_for_function(AVATARS_SETTLED)
    size = f"#{pictured_row} .chat-avatar img"
    assert page.eval_on_selector(size, "i => i.naturalWidth") > 1  # the picture itself
    # No picture: the transparent pixel over the initials, which are what shows.
    assert page.eval_on_selector(f"#{hidden_row} .chat-avatar img", "i => i.naturalWidth") <= 1
    assert re.fullmatch(r"[A-ZÇĞİÖŞÜ#]{1,2}", page.inner_text(f"#{hidden_row} .chat-avatar > span"))
    # A picture that fails to load (its link gone, the server away) leaves no broken image: the initials stay.
    page.eval_on_selector(size, "i => { i.src = '/dashboard/devices/999999/avatar/1@s.whatsapp.net/'; }")
    page.wait_for_selector(size, state="detached")
    assert page.is_visible(f"#{pictured_row} .chat-avatar > span")
    page.goto(inbox)
    page.click(f"#{pictured_row}")
    page.wait_for_selector("#conversation-pane .msg-in:has-text('A picture is here')")
    page.wait_for_function(
        "() => { const i = document.querySelector('.conversation-head .avatar-badge img');"
        " return i && i.complete && i.naturalWidth > 1; }"
    )
    page.wait_for_function(AVATARS_SETTLED)
    shot(page, "30-inbox-pictures-en-1280")

    # --- 2. At 390 px the name is readable beside a short time -------------------------------------------
    narrow = context.new_page()
    narrow.set_viewport_size({"width": 390, "height": 844})
    narrow.goto(inbox)
    narrow.wait_for_selector(f"#{pictured_row}")
    narrow.wait_for_function(AVATARS_SETTLED)
    assert narrow.evaluate("document.documentElement.scrollWidth") <= 390
    for row in (pictured_row, hidden_row):
        when = narrow.eval_on_selector(f"#{row} .chat-when", "e => e.getBoundingClientRect().width")
        name = narrow.eval_on_selector(f"#{row} .chat-name", "e => [e.scrollWidth, e.clientWidth]")
        assert when < 60, when  # today's messages: the time alone ("14:02")
        assert name[0] <= name[1], f"the name of {row} is cut: {name}"
    shot(narrow, "31-inbox-pictures-en-390")
    narrow.click(f"#{pictured_row}")
    narrow.wait_for_selector("#conversation-pane .msg-in:has-text('A picture is here')")
    # The title's name is whole: "Mark all read" goes under it rather than squeezing it.
    title = narrow.eval_on_selector(".conversation-title h2", "e => [e.scrollWidth, e.clientWidth]")
    assert title[0] <= title[1], title
    shot(narrow, "32-conversation-picture-en-390")
    narrow.close()

    # --- 3. A LID chat open on screen follows into its number's chat ---------------------------------------
    _peer_says(phone, device_id, quiet, "Before hiding")
    page.goto(inbox)
    number_row = _row_id(page, "Before hiding")
    number_pk = int(number_row.split("-")[1])
    number_form = f"#sandbox-phone-{device_id} form[action$='/number/']"
    phone.select_option(f"{number_form} select[name=from_phone]", quiet)
    phone.click(f"{number_form} #sandbox-hide-number")
    phone.wait_for_selector(".flash-success")
    _peer_says(phone, device_id, quiet, "Who am I now?")
    lid_row = _row_id(page, "Who am I now?")
    assert lid_row != number_row
    page.click(f"#{lid_row}")
    page.wait_for_selector("#conversation-pane .conversation-title:has-text('Unknown number (LID)')")
    page.evaluate("window.__sameDocument = true")
    box = page.locator("#send-form textarea[name=text]")
    box.click()
    box.type("Half a reply")
    shot(page, "33-lid-chat-open-en-1280")
    phone.select_option(f"{number_form} select[name=from_phone]", quiet)
    phone.click(f"{number_form} #sandbox-share-number")
    # The pane becomes the number's chat, with both chats' messages; the LID row goes; nothing reloaded.
    page.wait_for_selector(f"#conversation-pane[data-chat='{number_pk}']")
    page.wait_for_selector("#conversation-pane .msg-in:has-text('Who am I now?')")
    page.wait_for_selector("#conversation-pane .msg-in:has-text('Before hiding')")
    page.wait_for_selector(f"#{lid_row}", state="detached")
    assert not page.is_visible("#conversation-pane .conversation-title:has-text('Unknown number (LID)')")
    assert page.evaluate("window.__sameDocument === true"), "the page reloaded"
    assert page.url.endswith(f"/chats/{number_pk}/"), page.url  # a reload opens the number's chat
    assert box.input_value() == "Half a reply"  # the reply being written is kept
    page.wait_for_selector(f"#{number_row}.open")
    shot(page, "34-lid-merged-pane-followed-en-1280")

    # --- 4. The audit log on a phone: one card per event ------------------------------------------------
    audit = context.new_page()
    audit.set_viewport_size({"width": 390, "height": 844})
    audit.goto(f"{base}/accounts/audit/")
    audit.wait_for_selector(".audit-table tbody tr")
    assert audit.evaluate("document.documentElement.scrollWidth") <= 390
    cards = audit.eval_on_selector_all(
        ".audit-table tbody tr",
        "rows => rows.map(r => ({w: r.getBoundingClientRect().width,"
        " what: r.querySelector('.audit-action').getBoundingClientRect().width}))",
    )
    # Each field has the card's width (not a column a word wide), and says what it is.
    assert cards and all(c["w"] > 300 and c["what"] > 250 for c in cards), cards
    label = audit.eval_on_selector(
        ".audit-table td.audit-who", "td => getComputedStyle(td, '::before').content"
    )
    assert "Who" in label
    shot(audit, "35-audit-log-cards-en-390")
    # A window too narrow for six columns has the cards too; a wide one the table, no column a word wide.
    audit.set_viewport_size({"width": 800, "height": 900})
    assert audit.eval_on_selector(".audit-table thead", "e => getComputedStyle(e).position") == "absolute"
    shot(audit, "36-audit-log-cards-en-800")
    audit.set_viewport_size({"width": 1280, "height": 900})
    assert audit.eval_on_selector(".audit-table thead", "e => getComputedStyle(e).position") != "absolute"
    widths = audit.eval_on_selector_all(
        ".audit-table thead th", "ths => ths.map(th => th.getBoundingClientRect().width)"
    )
    assert min(widths) >= 100, widths
    shot(audit, "37-audit-log-table-en-1280")
    context.close()
