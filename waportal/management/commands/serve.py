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
        serve(host=host, port=port, embedded=embedded)
