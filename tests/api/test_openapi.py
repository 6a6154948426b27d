"""The OpenAPI document (what it declares; tests/api/test_schemathesis.py checks it against the server) and the docs page."""

import re

import pytest
from django.test import Client

from tests.api.conftest import PEER
from tests.api.endpoints import ENDPOINTS, MESSAGE_ID


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


@pytest.mark.django_db
def test_every_operation_declares_its_failures_with_the_error_envelope():
    document = Client().get("/openapi.json").json()
    assert set(document["components"]["schemas"]["Error"]["required"]) == {"code", "message", "results"}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert "500" in responses, (method, path)
            assert ("401" in responses) == bool(operation.get("security")), (method, path)  # /health: no key
            if operation.get("requestBody"):
                assert {"400", "413", "415"} <= set(responses), (method, path)
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)
    send = document["paths"]["/send/message"]["post"]["responses"]
    assert {"422", "503", "504"} <= set(send)


@pytest.mark.django_db
def test_identifiers_have_the_patterns_the_server_enforces(api):
    document = Client().get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    phone = schemas["TextIn"]["properties"]["phone"]["anyOf"][0]["pattern"]
    group = schemas["GroupIn"]["properties"]["group_id"]["anyOf"][0]["pattern"]
    for value, valid in [
        ("905551234567", True),
        ("+90 555 123-45-67", True),
        ("905551234567@s.whatsapp.net", True),
        ("120363000000000000@g.us", True),
        ("905xxxxxxxxx", False),  # the old example
        ("hello", False),
    ]:
        assert bool(re.search(phone, value)) is valid, value
        answer = api.post("/send/message", {"phone": value, "message": "x"})
        assert (answer.status_code != 400) is valid, (value, answer.content)
    assert re.search(group, "120363000000000000@g.us") and not re.search(group, "905551234567@s.whatsapp.net")
    # The document's own example of POST /group is accepted (it was refused: 905xxxxxxxxx is not a number).
    example = {
        name: prop["examples"][0] if "examples" in prop else [prop["items"]["examples"][0]]
        for name, prop in schemas["CreateIn"]["properties"].items()
    }
    assert example["participants"] == ["905551234567"], example
    answer = api.post("/group", example)
    assert answer.status_code != 400, answer.content
