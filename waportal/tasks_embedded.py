"""The in-process task worker of the embedded default (filled in by the webhook work)."""


def run_embedded_task_worker():
    return None
