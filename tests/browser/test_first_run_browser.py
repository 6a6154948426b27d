"""A fresh install in Chromium: the server prints its one-time setup link, `/` leads to the setup page, the
first owner and organization are made there, and the dashboard opens on a styled page that leads on.

Its own server over an empty database (the shared one already has users). Screenshots: test-output/screenshots/.
"""

import os
import re
import subprocess
import sys

import pytest

from tests.browser.conftest import CHROMIUM, ROOT, SCREENSHOTS, _free_port, _wait_until_serving

pytestmark = pytest.mark.browser

TIMEOUT = 20_000


@pytest.fixture
def fresh_server(tmp_path):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed")
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "PYTEST_CURRENT_TEST")
    }
    env.update(
        WAPORTAL_DATA_DIR=str(tmp_path),
        WA_BACKEND="sandbox",
        DJANGO_SETTINGS_MODULE="tests.browser.server_settings",
        PYTHONPATH=str(ROOT),
        DEBUG="false",
    )
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    port = _free_port()
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_serving(proc, port, log)
        yield f"http://127.0.0.1:{port}", log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_the_first_run_leads_from_the_log_to_a_working_dashboard(fresh_server, chromium):
    base, log = fresh_server
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    link = re.search(r"http://\S+/accounts/setup/\?token=\w+", log.read_text())
    assert link, "the server did not print the setup link:\n" + log.read_text()[-2000:]
    context = chromium.new_context(viewport={"width": 390, "height": 844})
    context.set_default_timeout(TIMEOUT)
    page = context.new_page()

    # Without the token: / leads to the setup page, which says where the link is; the login page too.
    page.goto(base + "/")
    page.wait_for_selector("[data-setup-locked]")
    assert "/accounts/setup/" in page.url
    page.screenshot(path=str(SCREENSHOTS / "30-first-run-no-token-390.png"), full_page=True)
    page.goto(base + "/accounts/login/")
    page.wait_for_selector("[data-first-run]")

    # With the link from the log: the first owner and organization, then the dashboard.
    page.goto(link.group(0))
    page.fill("input[name=organization]", "First Org")
    page.fill("input[name=email]", "first@example.com")
    page.fill("input[name=password]", "a long first password")
    page.screenshot(path=str(SCREENSHOTS / "31-first-run-setup-390.png"), full_page=True)
    with page.expect_navigation():
        page.click("#setup-submit")
    page.wait_for_selector(".flash-success")
    assert page.url.rstrip("/").endswith("/dashboard")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(SCREENSHOTS / "32-first-run-done-390.png"), full_page=True)
    # The link is spent.
    page.goto(link.group(0))
    assert "/accounts/login/" in page.url or page.url.rstrip("/").endswith("/dashboard")
    context.close()
