"""Schemathesis against the app in-process: every answer is one the OpenAPI document declares, in its shape.

What `st run` does (examples, coverage and fuzzing phases, every check), through the ASGI application, as an
organization with one linked number on the simulated network; seeded and deterministic, so a failure here
fails the same way again. A failure lists each distinct (operation, check) with the answers that broke it.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events
from schemathesis.engine import from_schema as engine_for

from waportal.asgi import application

EXAMPLES = 5  # per operation and phase; the run takes about a minute

# These change what every other operation sees (a second device makes the device choice required; a logout or
# a removal leaves nothing linked), so they run after the rest, each on its own.
LAST = ("GET /app/logout", "POST /devices/{device_id}/logout", "DELETE /devices/{device_id}", "POST /devices")
# Operations whose body is multipart with a file given either uploaded or by URL (`oneOf` in the document).
FILE_OR_URL = tuple(
    f"POST {path}"
    for path in (
        "/send/image",
        "/send/video",
        "/send/audio",
        "/send/file",
        "/send/sticker",
        "/group/photo",
        "/user/avatar",
    )
)

ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]  # schemathesis's default for valid data
CHECKS = {
    # 503 is the documented answer when no session worker holds the device; on a loaded machine the test's
    # worker can miss a heartbeat and let its hold lapse for a moment. Other 5xx stay failures.
    "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "503"]},
    # 422 answers a request that is as documented but cannot be done (WhatsApp refused it, a URL it names could
    # not be fetched, its fields contradict each other): valid data, rightly refused.
    "positive_data_acceptance": {"expected-statuses": [*ACCEPTED, "422"]},
}
FILE_OR_URL_CHECKS = {
    "not_a_server_error": CHECKS["not_a_server_error"],
    # 415: a file's type is read from its bytes, which no schema describes; a PNG sent as `audio` is refused.
    "positive_data_acceptance": {"expected-statuses": [*ACCEPTED, "415", "422"]},
}
# schemathesis 4.32's coverage phase combines a multipart body's optional parts without regard to its oneOf, so
# its "positive" cases upload the file and give its URL at once, which the document and the server refuse alike.
# (The fuzzing phase honours oneOf and keeps the check.)
FILE_OR_URL_COVERAGE_CHECKS = {
    # 503 is the documented answer when no session worker holds the device; on a loaded machine the test's
    # worker can miss a heartbeat and let its hold lapse for a moment. Other 5xx stay failures.
    "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "503"]},
    "positive_data_acceptance": {"enabled": False},
}


def _config(
    api_key: str, *, checks: dict = CHECKS, coverage_checks: dict | None = None
) -> SchemathesisConfig:
    coverage = {"unexpected-methods": ["patch"]}
    if coverage_checks is not None:
        coverage["checks"] = coverage_checks
    return SchemathesisConfig.from_dict(
        {
            "seed": 1,
            "headers": {"Authorization": f"Bearer {api_key}"},
            "workers": 1,
            "continue-on-failure": True,
            "generation": {
                "max-examples": EXAMPLES,
                "deterministic": True,
                "database": "none",
                # The key goes in the Authorization header; its other places are tested in test_conventions.py.
                "with-security-parameters": False,
                # No text may hold a NUL character (PostgreSQL cannot store one): every endpoint refuses it with
                # a 400 naming the field, as the document's description says once for all of them.
                "allow-x00": False,
            },
            "checks": checks,
            # The stateful phase needs links between operations, which the document does not declare. One
            # unexpected method is enough to check the 405 answer and its Allow header on every path; all eight
            # would make the run half as long again.
            "phases": {"stateful": {"enabled": False}, "coverage": coverage},
        }
    )


def _message(response) -> str:
    try:
        return json.loads(response.content)["message"][:120]
    except (ValueError, KeyError, TypeError):
        return repr((response.content or b"")[:120])


# Valid requests that the state of the world refuses, with the reference server's 400 codes its clients expect:
# a number not on WhatsApp, a number already linked. And a URL whose host does not resolve (this test stubs DNS).
STATE_REFUSALS = {"INVALID_JID", "ALREADY_LOGGED_IN"}


def _refused_by_state(response) -> bool:
    try:
        body = json.loads(response.content)
    except ValueError:
        return False
    return body.get("code") in STATE_REFUSALS or "does not resolve" in str(body.get("message", ""))


def _run(schema, found: dict) -> int:
    """Run every phase over `schema`; add each failure to `found` ((operation, check) -> answers); cases run."""
    cases = 0
    for event in engine_for(schema).execute():
        if isinstance(event, events.FatalError):
            raise event.exception
        if isinstance(event, events.NonFatalError):
            found[(event.label, "error")].add(f"{type(event.value).__name__}: {event.value}")
        if not isinstance(event, events.ScenarioFinished):
            continue
        recorder = event.recorder
        for case_id, checks in recorder.checks.items():
            cases += 1
            interaction = recorder.interactions.get(case_id)
            response = interaction.response if interaction else None
            for check in checks:
                if check.failure_info is None:
                    continue
                failure = check.failure_info.failure
                answer = (
                    f"{response.status_code} {_message(response)}" if response is not None else "no answer"
                )
                if failure.code == "ST202" and response is not None and _refused_by_state(response):
                    continue
                found[(failure.operation, f"{failure.code} {failure.title}")].add(answer)
    return cases


# About 3000 cases: a minute and a half on two idle cores; room for a loaded CI machine.
@pytest.mark.timeout(300)
@pytest.mark.django_db(transaction=True)
def test_every_answer_is_as_documented(wa, org, api_key, monkeypatch):
    def no_dns(host, port=None):
        # Media URLs are refused (422, "does not resolve"), never fetched from the outside world.
        raise OSError("no name resolution in this test")

    monkeypatch.setattr("messaging.safe_fetch.resolve", no_dns)
    wa.linked_device(org)

    def schema(**config):
        return schemathesis.openapi.from_asgi("/openapi.json", application, config=_config(api_key, **config))

    started = time.monotonic()
    found: dict = defaultdict(set)
    cases = _run(schema().exclude(name=[*LAST, *FILE_OR_URL]), found)
    cases += _run(
        schema(checks=FILE_OR_URL_CHECKS, coverage_checks=FILE_OR_URL_COVERAGE_CHECKS).include(
            name=list(FILE_OR_URL)
        ),
        found,
    )
    for name in LAST:
        cases += _run(schema().include(name=name), found)
    elapsed = time.monotonic() - started

    lines = [f"{len(found)} distinct failures over {cases} cases in {elapsed:.0f}s"]
    for (operation, check), answers in sorted(found.items()):
        lines.append(f"{operation} | {check}")
        lines.extend(f"      {answer}" for answer in sorted(answers)[:8])
    report = "\n".join(lines)
    assert cases > 1000, report  # the run reached every operation
    assert not found, report
