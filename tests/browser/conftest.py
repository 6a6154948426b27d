"""A real server for the browser tests: `manage.py serve` (daphne, the session workers and the task worker in
one process, as the README runs it) on a free port, over a fresh SQLite file, on the sandbox backend; and a
Chromium whose every page fails the test that opened it if it breaks the Content-Security-Policy."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
EMAIL, PASSWORD = "browser@example.com", "a long browser password"
START_TIMEOUT = 60.0
# Where the browser tests leave screenshots for a person to look at (git-ignored; named at the end of the run).
SCREENSHOTS = ROOT / "test-output" / "screenshots"

SETUP_USER = f"""
import django
django.setup()
from accounts.models import Membership, Organization, User
user = User.objects.create_user(email={EMAIL!r}, password={PASSWORD!r})
org = Organization.objects.create(name="Browser Org", slug="browser-org")
Membership.objects.create(user=user, organization=org, role="owner")
"""


@dataclass
class LiveServer:
    url: str
    email: str
    password: str
    log: Path
    env: dict  # the server's environment: `run_in_server` runs Django code against its database

    def run_in_server(self, code: str) -> str:
        """Run Python `code` (after django.setup()) on the server's settings and database; its stdout."""
        done = subprocess.run(
            [sys.executable, "-c", "import django\ndjango.setup()\n" + code],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        )
        return done.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_serving(proc: subprocess.Popen, port: int, log: Path) -> None:
    """Wait for the port to accept connections; between tries, wait on the process (it may have died)."""
    import time

    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            pass
        try:
            proc.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            continue
        raise RuntimeError(f"the server exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
    raise RuntimeError(f"the server did not listen within {START_TIMEOUT} s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="session")
def asgi_server(tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed")
    pytest.importorskip("playwright.sync_api")
    data = tmp_path_factory.mktemp("browser-server")
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "PYTEST_CURRENT_TEST")
    }
    env.update(
        WAPORTAL_DATA_DIR=str(data),
        WA_BACKEND="sandbox",
        DJANGO_SETTINGS_MODULE="tests.browser.server_settings",
        PYTHONPATH=str(ROOT),
        DEBUG="false",
    )
    python = sys.executable
    subprocess.run(
        [python, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, capture_output=True
    )
    subprocess.run([python, "-c", SETUP_USER], cwd=ROOT, env=env, check=True, capture_output=True)
    port = _free_port()
    log = data / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [python, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_serving(proc, port, log)
        yield LiveServer(url=f"http://127.0.0.1:{port}", email=EMAIL, password=PASSWORD, log=log, env=env)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# Module scope, not session: Playwright's sync API keeps an asyncio loop running in this thread while it is
# started, and every async test collected after this module would fail with "cannot be called from a running
# event loop".
@pytest.fixture(scope="module")
def chromium_browser():
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            yield browser
        finally:
            browser.close()
    import asyncio

    # The loop Playwright ran in this thread must be gone with it, or every async test after this would fail.
    assert asyncio._get_running_loop() is None, "Playwright left an asyncio loop running in the test thread"


# Reported on the page by the browser for every blocked script, style, connection or handler; passed to the
# console, where the context's listener collects it (a violation inside a page Playwright does not watch, a
# popup say, still reaches the context).
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", function (e) {
  var where = e.target && e.target.outerHTML ? " on " + e.target.outerHTML.slice(0, 200) : "";
  console.error("CSP violation: " + e.violatedDirective + " blocked " + (e.blockedURI || "inline") +
                " at " + e.sourceFile + ":" + e.lineNumber + where);
});
"""


# How long each page may take to leave for about:blank when its context closes (ms).
LEAVE_TIMEOUT = 10_000


class CheckedContext:
    """A browser context of a test, whose `close` cannot be held up by what the test left open.

    A context closed with live pages (each with a WebSocket the server keeps pushing on, console listeners that
    call into Python) once hung for 120 s in Chromium's disposal after every assertion had passed, and the sync
    API gives `close` no timeout. So `close` first takes away the listeners the test added (no event reaches
    Python meanwhile), then sends each page to about:blank with a deadline (its socket and requests end there,
    as the page unloads; a page that does not leave in time is closed all the same), then closes the pages
    one by one, then the context, which by then holds nothing live."""

    def __init__(self, context):
        self._context = context
        self._listeners: list[tuple[str, object]] = []
        self.closed = False

    def on(self, event: str, handler) -> None:
        self._listeners.append((event, handler))
        self._context.on(event, handler)

    def close(self) -> None:
        from playwright.sync_api import Error

        self.closed = True
        for event, handler in self._listeners:
            self._context.remove_listener(event, handler)
        self._listeners.clear()
        for page in list(self._context.pages):
            try:
                page.goto("about:blank", wait_until="commit", timeout=LEAVE_TIMEOUT)
            except Error:
                pass
            page.close()
        self._context.close()

    def __getattr__(self, name):
        return getattr(self._context, name)


class CspCheckedBrowser:
    """The Chromium a test drives: every context it opens reports Content-Security-Policy violations, which
    fail the test (`violations`, checked when the test ends)."""

    def __init__(self, browser):
        self._browser = browser
        self.violations: list[str] = []
        self.contexts: list[CheckedContext] = []

    def new_context(self, **kwargs):
        context = CheckedContext(self._browser.new_context(**kwargs))
        context.add_init_script(REPORT_VIOLATIONS)

        def on_console(message):
            # Chromium's own report ("Refused to execute inline script because it violates the following
            # Content Security Policy directive ...") and the event's, above.
            text = message.text
            if "Content Security Policy" in text or text.startswith("CSP violation"):
                self.violations.append(f"{message.page.url if message.page else '?'}: {text}")

        context.on("console", on_console)
        self.contexts.append(context)
        return context

    def __getattr__(self, name):
        return getattr(self._browser, name)


@pytest.fixture
def chromium(chromium_browser):
    browser = CspCheckedBrowser(chromium_browser)
    yield browser
    for context in browser.contexts:  # those a failing test left open, so that they cannot hold up the next
        if not context.closed:
            context.close()
    assert not browser.violations, "Content-Security-Policy violations:\n" + "\n".join(browser.violations)


def pytest_terminal_summary(terminalreporter):
    if SCREENSHOTS.is_dir() and any(SCREENSHOTS.glob("*.png")):
        terminalreporter.write_line(f"browser screenshots: {SCREENSHOTS}")
