"""`manage.py serve`: the dashboard, the API, the session workers and the task worker, in one process."""

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve waportal in one process: web, WebSockets, session workers and background tasks."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--web-only",
            action="store_true",
            help="Serve HTTP and WebSockets only (production, where runsessions and celery run apart).",
        )

    def handle(self, *args, host, port, web_only, **options):
        from waportal.launcher import serve

        embedded = not web_only
        if embedded and not settings.EMBEDDED:
            self.stdout.write(
                "REDIS_URL is set: also starting session workers and tasks here (use --web-only to not)."
            )
        self.stdout.write(f"waportal on http://{host}:{port}/  backend={settings.WA_BACKEND}")
        self._announce_setup(host, port)
        serve(host=host, port=port, embedded=embedded)

    def _announce_setup(self, host: str, port: int) -> None:
        """A fresh install has no account: say where the one-time setup page is, with its token."""
        from django.db import DatabaseError

        from accounts import first_run

        try:
            if not first_run.needs_setup():
                return
        except DatabaseError:  # not migrated yet: `make run` migrates first; nothing to say here
            return
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        self.stdout.write(
            self.style.WARNING("No account exists yet. Create the first one (this link works once):")
            + f"\n    {first_run.setup_url(f'http://{shown}:{port}')}\n"
        )
