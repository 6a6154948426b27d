"""Leave what a process loaded at start-up out of the garbage collector's full passes.

A server process holds ~200,000 objects once Django, the apps and their libraries are imported: modules,
functions, classes, the URL and ORM machinery. None of them ever becomes garbage, yet every full (generation
2) collection walks them all: measured in a conversation-page loop, one such pass took 114 ms, inside whichever
request happened to trigger it (a p99 of the history benchmark three times its p50). `gc.freeze()` moves them
to a generation the collector never walks; the same pass then took 24 ms. Cycles made later are collected as
before. Called once by each long-running process when its imports are done: the ASGI application (daphne and
`manage.py serve`), `runsessions` and each Celery worker process.
"""

import gc


def freeze_startup_objects() -> None:
    gc.collect()  # (what is already garbage is freed, not frozen)
    gc.freeze()
