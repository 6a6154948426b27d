"""Every dashboard page carries the Content-Security-Policy (scripts and styles from our origin only, no inline
code, no eval), and no template holds what that policy would block. In a browser: tests/browser (any violation
fails a browser test)."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

TEMPLATES = Path(settings.BASE_DIR) / "templates"
# What SECURE_CSP blocks: an inline script, a style element or attribute, an on* handler, a javascript: URL.
BLOCKED = re.compile(
    r"<script(?![^>]*\bsrc=)[^>]*>|<style\b|\sstyle=|\son[a-z]+\s*=|javascript:|hx-on[:-]", re.IGNORECASE
)


def policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {d.split()[0]: d.split()[1:] for d in header.split(";") if d.strip()}


@pytest.mark.parametrize(
    ("who", "page"),
    [
        ("client", "accounts:login"),
        ("owner_client", "messaging:devices"),
        ("owner_client", "webhooks:list"),
        ("owner_client", "accounts:api_keys"),
        ("owner_client", "accounts:audit_log"),
    ],
)
@pytest.mark.django_db  # the sign-in page asks whether anyone exists yet (the first-run hint)
def test_every_page_forbids_inline_code_and_eval(request, who, page):
    response = request.getfixturevalue(who).get(reverse(page))
    assert response.status_code == 200
    rules = policy(response)
    assert rules["script-src"] == ["'self'"] and rules["style-src"] == ["'self'"]
    assert rules["object-src"] == ["'none'"] and rules["frame-ancestors"] == ["'none'"]
    assert not any("unsafe" in value for values in rules.values() for value in values)


def test_the_api_docs_page_has_the_same_policy(client):
    response = client.get("/docs")
    assert response.status_code == 200
    assert policy(response)["script-src"] == ["'self'"]


def test_an_htmx_partial_carries_it_too(owner_client):
    response = owner_client.get(reverse("messaging:devices"), HTTP_HX_REQUEST="true")
    assert "script-src 'self'" in response["Content-Security-Policy"]


@pytest.mark.parametrize(
    "template", sorted(TEMPLATES.rglob("*.html")), ids=lambda p: str(p.relative_to(TEMPLATES))
)
def test_no_template_holds_what_the_policy_blocks(template):
    text = re.sub(r"{%\s*comment\s*%}.*?{%\s*endcomment\s*%}", "", template.read_text(), flags=re.S)
    assert not BLOCKED.findall(text)
