"""The house's walk from a URL: view (or API endpoint) -> service -> gateway. A page or an endpoint never talks to
WhatsApp itself, so the tenant check and the audit entry of the service cannot be skipped."""

import ast
from pathlib import Path

BASE = Path(__file__).resolve().parents[2]
LAYERS = [BASE / "messaging" / "views", BASE / "messaging" / "api", BASE / "accounts" / "views.py"]


def _modules():
    for layer in LAYERS:
        yield from sorted(layer.rglob("*.py")) if layer.is_dir() else [layer]


def _names_gateway(tree) -> bool:
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module == "messaging"
            and any(alias.name == "gateway" for alias in node.names)
        ):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("messaging.gateway"):
            return True
        if isinstance(node, ast.Import) and any(a.name.startswith("messaging.gateway") for a in node.names):
            return True
    return False


def test_no_view_or_endpoint_reaches_the_gateway_but_through_a_service():
    modules = list(_modules())
    assert len(modules) > 10  # the layers are where this test looks
    offenders = [str(m.relative_to(BASE)) for m in modules if _names_gateway(ast.parse(m.read_text()))]
    assert offenders == []
