"""The Content-Security-Policy in Debian's Chromium: the API docs (Swagger UI) still work under theirs, and what
used to be inline handlers (submit on change, confirm before submit) still works from waportal.js. Any
violation fails the test (see the `chromium` fixture)."""

import pytest

from tests.browser.test_dashboard_browser import TIMEOUT, _sign_in

pytestmark = pytest.mark.browser


def test_swagger_ui_works_under_its_policy(asgi_server, chromium):
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT)
    page = context.new_page()
    response = page.goto(f"{asgi_server.url}/docs")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.wait_for_selector(".swagger-ui .info .title")
    operation = page.wait_for_selector(".opblock-summary:has-text('/send/message')")
    operation.click()
    page.wait_for_selector(".opblock.is-open .opblock-body")
    context.close()


def test_former_inline_handlers_work_from_the_script(asgi_server, chromium):
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT)
    page = _sign_in(context, asgi_server)
    base = asgi_server.url

    # The language menu submits itself when changed (it was onchange="this.form.submit()").
    page.goto(f"{base}/dashboard/")
    with page.expect_navigation():
        page.select_option("select[name=language]", "tr")
    assert page.get_attribute("html", "lang") == "tr"
    with page.expect_navigation():
        page.select_option("select[name=language]", "en")
    assert page.get_attribute("html", "lang") == "en"

    # Deleting a webhook asks first (it was onsubmit="return confirm(...)"): refused, it stays; accepted, gone.
    endpoint_id = asgi_server.run_in_server(
        "from accounts.models import Organization\n"
        "from messaging.models import WebhookEndpoint\n"
        "org = Organization.objects.get(slug='browser-org')\n"
        "print(WebhookEndpoint.objects.create(organization=org, url='https://hooks.example.com/csp',"
        " events=['message']).pk)"
    ).strip()
    detail = f"{base}/dashboard/webhooks/{endpoint_id}/"
    page.goto(detail)
    asked, deletes = [], []
    context.on("request", lambda r: deletes.append(r.url) if r.url.endswith("/delete/") else None)

    def refuse(dialog):
        asked.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", refuse)
    with page.expect_event("dialog"):
        page.click("form[action$='/delete/'] button")
    assert asked and page.url == detail
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.click("form[action$='/delete/'] button")
    assert page.url != detail
    assert len(deletes) == 1  # the refused one never left
    assert page.goto(detail).status == 404
    context.close()
