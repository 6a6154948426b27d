"""The dashboard in Debian's Chromium against a real server: link a sandbox number by QR from the simulated
phone, watch it connect with no reload, talk with a simulated peer (ticks to "read", messages arriving live),
then create a group and promote a member. A screenshot of each step goes to the test's tmp folder."""

import re

import pytest

pytestmark = pytest.mark.browser

TIMEOUT = 20_000  # ms: generous for a loaded 2-core machine; every wait is for an element, never a sleep


def test_link_chat_and_manage_a_group_live(asgi_server, chromium, tmp_path):
    shots = tmp_path / "screenshots"
    shots.mkdir()
    base = asgi_server.url
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT)
    sockets = []  # every live socket goes through here, so the test can cut one as a network drop would

    def through(ws):
        ws.connect_to_server()
        sockets.append(ws)

    context.route_web_socket(re.compile(r".*/ws/live/.*"), through)
    page = context.new_page()
    page.add_init_script(
        "window.__wsOpens = 0; document.addEventListener('htmx:wsOpen', () => window.__wsOpens++);"
    )

    def shot(name):
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

    # Sign in.
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=username]", asgi_server.email)
    page.fill("input[name=password]", asgi_server.password)
    shot("01-sign-in")
    with page.expect_navigation():
        page.click("form:has(input[name=password]) button[type=submit]")
    assert "/accounts/login/" not in page.url

    # Add a number and link it by QR: the code appears, then rotates, with its countdown.
    page.goto(f"{base}/dashboard/")
    page.fill("input[name=name]", "Browser phone")
    page.click("#add-device")
    page.wait_for_url(re.compile(r".*/dashboard/devices/\d+/$"))
    device_id = int(re.search(r"/devices/(\d+)/$", page.url).group(1))
    page.evaluate("window.__sameDocument = true")
    page.click("#link-qr")
    first = page.wait_for_selector(f"#device-{device_id}-link figure.qr svg")
    assert first is not None
    code = page.get_attribute(f"#device-{device_id}-link figure.qr", "data-qr")
    page.wait_for_selector(f"#device-{device_id}-link .qr-countdown[data-left]")
    shot("02-qr-code")
    page.wait_for_selector(
        f'#device-{device_id}-link figure.qr:not([data-qr="{code}"])'
    )  # rotated, pushed live
    page.wait_for_selector(f'#device-{device_id}-status[data-status="qr_waiting"]')
    shot("03-qr-code-rotated")

    # The simulated phone (another tab) scans it; the first tab turns "connected" by itself.
    phone = context.new_page()
    phone.goto(f"{base}/dashboard/sandbox/")
    phone.click(f"#sandbox-phone-{device_id} #sandbox-scan")
    phone.wait_for_selector(".flash-success")
    page.wait_for_selector(f'#device-{device_id}-status[data-status="connected"]')
    page.wait_for_selector(f"#device-{device_id}-link [data-connected]")
    assert page.evaluate("window.__sameDocument === true"), "the page reloaded"
    shot("04-connected")

    # A simulated peer writes: the chat appears live in the inbox.
    page.goto(f"{base}/dashboard/devices/{device_id}/chats/")
    page.evaluate("window.__sameDocument = true")
    phone.goto(f"{base}/dashboard/sandbox/")
    peers = phone.eval_on_selector_all(
        f"#sandbox-phone-{device_id} select[name=from_phone] option", "els => els.map(e => e.value)"
    )
    assert len(peers) >= 2
    phone.fill(f"#sandbox-phone-{device_id} input[name=text]", "Merhaba from the simulated phone")
    phone.click(f"#sandbox-phone-{device_id} #sandbox-peer-send")
    phone.wait_for_selector(".flash-success")
    row = page.wait_for_selector(
        f"#chat-list-{device_id} .chat-row:has-text('Merhaba from the simulated phone')"
    )
    assert page.evaluate("window.__sameDocument === true")
    shot("05-inbox-live")

    # Open the conversation, answer: the ticks move to "read" as the peer's receipts arrive.
    row.click()
    page.wait_for_selector(".msg-in:has-text('Merhaba from the simulated phone')")
    page.evaluate("window.__sameDocument = true")
    page.fill("#send-form textarea[name=text]", "Hello from the dashboard")
    page.click("#send-button")
    page.wait_for_selector(".msg-out:has-text('Hello from the dashboard') .ticks")
    page.wait_for_selector(".msg-out:has-text('Hello from the dashboard') .ticks[data-status='read']")
    assert (
        page.locator(".msg-out:has-text('Hello from the dashboard')").count() == 1
    )  # one copy, however it arrived
    shot("06-ticks-read")

    # The peer writes again while the conversation is open: it appears without a reload.
    phone.fill(f"#sandbox-phone-{device_id} input[name=text]", "Second message, live")
    phone.click(f"#sandbox-phone-{device_id} #sandbox-peer-send")
    page.wait_for_selector(".msg-in:has-text('Second message, live')")
    assert page.evaluate("window.__sameDocument === true"), "the page reloaded"
    shot("07-message-live")

    # The socket drops (the server restarts, say): the extension reconnects and the page re-fetches its
    # messages, so one written meanwhile shows up too.
    page.wait_for_function("() => window.__wsOpens >= 1")
    opens = page.evaluate("window.__wsOpens")
    conversation_path = re.sub(r"^https?://[^/]+", "", page.url)
    with page.expect_request(
        lambda r: r.url.endswith(conversation_path) and r.headers.get("hx-request") == "true"
    ):
        # The conversation's socket (it names the number; the simulated phone's page has one of its own).
        [*(ws for ws in sockets if "device=" in ws.url)][-1].close(code=1012, reason="service restart")
        phone.fill(f"#sandbox-phone-{device_id} input[name=text]", "Written while the socket was down")
        phone.click(f"#sandbox-phone-{device_id} #sandbox-peer-send")
        page.wait_for_function(f"() => window.__wsOpens > {opens}")
    page.wait_for_selector(".msg-in:has-text('Written while the socket was down')")
    assert page.locator(".msg-in:has-text('Written while the socket was down')").count() == 1
    assert page.evaluate("window.__sameDocument === true"), "the page reloaded"
    shot("07b-recovered-after-socket-drop")

    # Create a group with two simulated peers, then promote one of them.
    page.goto(f"{base}/dashboard/groups/{device_id}/")
    page.fill("input[name=name]", "Browser group")
    page.fill("textarea[name=participants]", f"{peers[0]}, {peers[1]}")
    page.click("#create-group")
    page.wait_for_selector("#participants")
    member = f"{peers[0]}@s.whatsapp.net"
    page.wait_for_selector(f'tr[data-participant="{member}"] [data-role="member"]')
    shot("08-group-created")
    page.click(f'[data-promote="{member}"]')
    page.wait_for_selector(f'tr[data-participant="{member}"] [data-role="admin"]')
    shot("09-member-promoted")

    context.close()
    assert len(list(shots.glob("*.png"))) == 10


def _sign_in(context, server):
    page = context.new_page()
    page.goto(f"{server.url}/accounts/login/")
    page.fill("input[name=username]", server.email)
    page.fill("input[name=password]", server.password)
    with page.expect_navigation():
        page.click("form:has(input[name=password]) button[type=submit]")
    return page


def test_pairing_code_then_compose_with_upload_progress_and_inline_errors(asgi_server, chromium, tmp_path):
    shots = tmp_path / "screenshots"
    shots.mkdir()
    base = asgi_server.url
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT)
    page = _sign_in(context, asgi_server)

    def shot(name):
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

    # Link by pairing code: enter the number, get the code, type it on the simulated phone.
    page.goto(f"{base}/dashboard/")
    page.fill("input[name=name]", "Paired phone")
    page.click("#add-device")
    page.wait_for_url(re.compile(r".*/dashboard/devices/\d+/$"))
    device_id = int(re.search(r"/devices/(\d+)/$", page.url).group(1))
    number = "19998887766"
    page.fill("#link-card input[name=phone]", number)
    page.click("#link-code")
    code = page.wait_for_selector(f"#device-{device_id}-link [data-pair-code]").get_attribute(
        "data-pair-code"
    )
    assert re.fullmatch(r"[A-Z0-9]{4}-[A-Z0-9]{4}", code)
    shot("01-pair-code")
    phone = context.new_page()
    phone.goto(f"{base}/dashboard/sandbox/")
    phone.fill(f"#sandbox-phone-{device_id} form:has(#sandbox-enter-code) input[name=phone]", number)
    phone.fill(f"#sandbox-phone-{device_id} input[name=code]", code)
    phone.click(f"#sandbox-phone-{device_id} #sandbox-enter-code")
    page.wait_for_selector(f'#device-{device_id}-status[data-status="connected"]')
    shot("02-connected-by-code")
    phone.goto(f"{base}/dashboard/sandbox/")
    peer = phone.eval_on_selector(
        f"#sandbox-phone-{device_id} select[name=from_phone] option", "e => e.value"
    )

    # A poll with one option is refused next to the field, the input kept.
    page.goto(f"{base}/dashboard/devices/{device_id}/compose/")
    page.click(".kind-tabs a[href='?kind=poll']")
    page.wait_for_selector("#compose input[name=kind][value=poll]", state="attached")
    page.fill("#compose input[name=to]", peer)
    page.fill("#compose input[name=question]", "Tea or coffee?")
    page.fill("#compose textarea[name=options]", "Tea")
    page.click("#compose-send")
    page.wait_for_selector(".field-error[data-field=options]")
    assert page.input_value("#compose input[name=question]") == "Tea or coffee?"
    shot("03-inline-error")

    # A video with caption and view-once: the upload shows its progress, then it is sent.
    page.click(".kind-tabs a[href='?kind=video']")
    page.wait_for_selector("#compose input[name=kind][value=video]", state="attached")
    assert page.input_value("#compose input[name=to]") == peer  # kept across kinds
    page.evaluate(
        """() => { window.__progress = [];
        document.addEventListener('htmx:xhr:progress', () => {
          const bar = document.querySelector('#upload-progress'); if (bar) window.__progress.push(bar.value); }); }"""
    )
    video = b"\0\0\0\x18ftypmp42" + bytes(3 * 1024 * 1024)
    page.set_input_files(
        "#compose input[name=file]", files=[{"name": "clip.mp4", "mimeType": "video/mp4", "buffer": video}]
    )
    page.fill("#compose input[name=caption]", "Our new clip")
    page.check("#compose input[name=view_once]")
    page.click("#compose-send")
    result = page.wait_for_selector(".sent-result")
    assert result.get_attribute("data-status") in ("sent", "queued")
    assert 100 in page.evaluate("window.__progress"), page.evaluate("window.__progress")
    shot("04-video-sent")
    page.click(".sent-result a")
    page.wait_for_selector(".msg-out[data-kind=video]:has-text('Our new clip')")
    assert "view once" in page.inner_text(".msg-out[data-kind=video]")
    shot("05-video-in-conversation")

    # Actions on the message, each swapped in place: star, react, edit the caption.
    msg = ".msg-out[data-kind=video]"
    page.click(f"{msg} .msg-actions summary")
    page.click(f"{msg} button:has-text('Star')")
    page.wait_for_selector(f"{msg} .msg-star")
    page.click(f"{msg} .msg-actions summary")
    page.click(f"{msg} button.emoji[value='👍']")
    page.wait_for_selector(f"{msg} .msg-reactions:has-text('👍')")
    page.click(f"{msg} .msg-actions summary")
    page.fill(f"{msg} input[name=text]", "Our newest clip")
    page.click(f"{msg} button:has-text('Edit')")
    page.wait_for_selector(f"{msg} .msg-edited")
    assert "Our newest clip" in page.inner_text(msg)
    shot("06-message-actions")
    context.close()
