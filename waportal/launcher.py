"""Runs the whole product in one process (the embedded default): daphne for HTTP and WebSockets, plus the
session workers and the task worker on the same event loop, so nothing else needs installing."""

import asyncio
import importlib
import logging

from django.conf import settings

logger = logging.getLogger(__name__)

# Started on the server's event loop once it runs. Each is "module:function"; the function takes no
# argument and returns an awaitable that runs until cancelled (or None when it started threads itself).
EMBEDDED_SERVICES = [
    "messaging.sessions:run_embedded_sessions",
    "waportal.tasks_embedded:run_embedded_task_worker",
]


def _resolve(spec: str):
    module_name, func_name = spec.split(":")
    return getattr(importlib.import_module(module_name), func_name)


# asyncio keeps only weak references to tasks: these must outlive the reactor callback that made them.
_running: list[asyncio.Task] = []


def _report_end(task: asyncio.Task) -> None:
    """An embedded service should run until the server stops: say loudly when one died."""
    if task.cancelled():
        return
    if (exc := task.exception()) is not None:
        logger.error("embedded service %s failed", task.get_name(), exc_info=exc)


def start_embedded_services(loop: asyncio.AbstractEventLoop | None = None) -> list[asyncio.Task]:
    """Create the embedded services' tasks on `loop`: the asyncio loop under daphne's reactor.

    Called before that loop runs (a reactor startup trigger), where `asyncio.get_event_loop()` would not
    return it: daphne makes the loop without making it the thread's current one.
    """
    if loop is None:
        from daphne.server import twisted_loop

        loop = twisted_loop
    tasks = []
    for spec in EMBEDDED_SERVICES:
        result = _resolve(spec)()
        if result is not None:
            task = loop.create_task(result, name=spec)
            task.add_done_callback(_report_end)
            tasks.append(task)
            logger.info("embedded service started: %s", spec)
    _running.extend(tasks)
    return tasks


def serve(*, host: str, port: int, embedded: bool = True) -> None:
    from daphne.endpoints import build_endpoint_description_strings
    from daphne.server import Server
    from twisted.internet import reactor

    from waportal.asgi import application

    if embedded:
        reactor.callWhenRunning(start_embedded_services)
    server = Server(
        application=application,
        endpoints=build_endpoint_description_strings(host=host, port=port),
        websocket_timeout=86400,
        application_close_timeout=10,
        verbosity=1 if settings.DEBUG else 0,
    )
    logger.info("waportal serving on http://%s:%s/ (%s)", host, port, "embedded" if embedded else "web only")
    server.run()
