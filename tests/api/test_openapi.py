"""The OpenAPI document and the docs page, and a property-based run over every operation: never a 5xx."""

from collections import Counter

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode

from tests.api.conftest import PEER
from tests.api.endpoints import ENDPOINTS, MESSAGE_ID

# Operations that end the device's session (or make a second device) would turn the rest of the run into
# "not connected" answers; each has its own example-based tests.
SKIP = {
    ("GET", "/app/logout"),
    ("GET", "/app/reconnect"),
    ("POST", "/devices"),
    ("DELETE", "/devices/{device_id}"),
    ("POST", "/devices/{device_id}/logout"),
    ("POST", "/devices/{device_id}/reconnect"),
}
EXAMPLES = 3  # per operation and generation mode: keeps the whole run well under a minute


@pytest.mark.django_db
def test_openapi_document_lists_every_endpoint_with_auth():
    response = Client().get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    paths = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    for endpoint in ENDPOINTS:
        path = endpoint.path.replace("{device}", "{device_id}").replace(MESSAGE_ID, "{message_id}")
        path = path.replace(f"/chat/{PEER}/", "/chat/{chat_jid}/")
        assert (endpoint.method, path) in paths, endpoint.id
    schemes = document["components"]["securitySchemes"]
    kinds = {(s["type"], s.get("scheme"), s.get("name")) for s in schemes.values()}
    assert {("http", "bearer", None), ("http", "basic", None), ("apiKey", None, "X-Api-Key")} <= kinds
    # the send endpoints document their answer
    send = document["paths"]["/send/message"]["post"]
    assert "200" in send["responses"]
    assert send["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/TextIn")
    assert set(document["components"]["schemas"]["TextIn"]["required"]) == {"phone", "message"}


@pytest.mark.django_db
def test_docs_page_is_served_from_our_own_static_files():
    page = Client().get("/docs")
    assert page.status_code == 200
    html = page.content.decode()
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in html
    assert 'data-openapi-url="/openapi.json"' in html
    assert "cdn" not in html.lower() and "https://" not in html
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "waportal-docs.js"):
        response = Client().get(f"/static/vendor/swagger-ui/{asset}")
        assert response.status_code == 200, asset


@pytest.mark.django_db(transaction=True)
def test_generated_requests_never_get_a_5xx(wa, org, api_key):
    wa.linked_device(org)
    schema = schemathesis.openapi.from_wsgi("/openapi.json", WSGIHandler())
    headers = {"Authorization": f"Bearer {api_key}"}
    failures: list[str] = []
    calls = 0
    statuses: Counter = Counter()
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIP:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @hypothesis_settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            def run(case):
                nonlocal calls
                calls += 1
                response = case.call(headers=headers)
                statuses[response.status_code // 100] += 1
                if response.status_code >= 500:
                    failures.append(
                        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
                    )

            try:
                run()
            except Unsatisfiable:  # nothing to get wrong (GET /health: no key, no parameters)
                assert mode is GenerationMode.NEGATIVE, operation.path
    assert calls > 100
    assert statuses[2] > 20, statuses  # valid requests got through, not only refusals
    assert not failures, "\n".join(failures[:20])
