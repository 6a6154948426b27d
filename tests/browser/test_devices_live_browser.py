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
