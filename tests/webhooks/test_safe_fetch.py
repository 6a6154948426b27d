"""URLs users give us are checked when entered and again when connecting, so they cannot reach our network."""

import socket

import pytest
from django.core.exceptions import ValidationError

from messaging import safe_fetch
from tests.webhooks.receiver import Answer


def error_of(exc_info, field="url"):
    return " ".join(exc_info.value.message_dict[field])


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://localhost:8000/",
        "http://10.1.2.3/",
        "http://192.168.1.10/",
        "http://172.16.0.5/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[fe80::1]/",
        "http://224.0.0.1/",
        "http://0.0.0.0/",
        "http://100.64.0.1/",
    ],
)
def test_private_loopback_and_link_local_targets_are_refused(settings, url):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    with pytest.raises(ValidationError) as exc_info:
        safe_fetch.validate_public_url(url, field="url")
    assert "not allowed" in error_of(exc_info)


@pytest.mark.parametrize(
    "url", ["ftp://93.184.216.34/x", "file:///etc/passwd", "gopher://x/", "93.184.216.34", ""]
)
def test_only_http_and_https_urls_are_accepted(url):
    with pytest.raises(ValidationError) as exc_info:
        safe_fetch.validate_public_url(url, field="target")
    assert exc_info.value.message_dict["target"]


def test_credentials_in_url_are_refused():
    with pytest.raises(ValidationError):
        safe_fetch.validate_public_url("https://user:pw@93.184.216.34/", field="url")


def test_public_address_is_accepted(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    assert (
        safe_fetch.validate_public_url(" https://93.184.216.34/hook ", field="url")
        == "https://93.184.216.34/hook"
    )


def test_a_host_that_does_not_resolve_is_refused():
    with pytest.raises(ValidationError) as exc_info:
        safe_fetch.validate_public_url("https://no-such-host.invalid/", field="url")
    assert "resolve" in error_of(exc_info)


def test_the_setting_allows_private_targets(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    assert safe_fetch.validate_public_url("http://127.0.0.1:9/x", field="url") == "http://127.0.0.1:9/x"


def test_fetch_returns_body_type_and_file_name(allow_private, receiver):
    receiver.routes["/files/photo.jpg"] = Answer(body=b"\xff\xd8jpeg", headers={"Content-Type": "image/jpeg"})
    receiver.routes["/download"] = Answer(
        body=b"%PDF",
        headers={
            "Content-Type": "application/pdf; charset=binary",
            "Content-Disposition": 'attachment; filename="../../report.pdf"',
        },
    )
    assert safe_fetch.fetch_url(f"{receiver.url}/files/photo.jpg", field="url", max_bytes=100, timeout=5) == (
        b"\xff\xd8jpeg",
        "image/jpeg",
        "photo.jpg",
    )
    assert safe_fetch.fetch_url(f"{receiver.url}/download", field="url", max_bytes=100, timeout=5) == (
        b"%PDF",
        "application/pdf",
        "report.pdf",
    )


def test_fetch_refuses_a_body_over_the_cap_declared_or_streamed(allow_private, receiver):
    receiver.routes["/big"] = Answer(body=b"x" * 5000)
    receiver.routes["/big-chunked"] = Answer(body=b"x" * 5000, chunked=True)
    for path in ("/big", "/big-chunked"):
        with pytest.raises(ValidationError) as exc_info:
            safe_fetch.fetch_url(f"{receiver.url}{path}", field="media_url", max_bytes=4096, timeout=5)
        assert "larger" in error_of(exc_info, "media_url")
        # The reason is in the code too, so an API can answer 413 for it.
        assert exc_info.value.error_dict["media_url"][0].code == "too_large"


def test_fetch_reports_an_error_status(allow_private, receiver):
    receiver.default = Answer(status=404, body=b"nope")
    with pytest.raises(ValidationError) as exc_info:
        safe_fetch.fetch_url(f"{receiver.url}/gone", field="url", max_bytes=100, timeout=5)
    assert "404" in error_of(exc_info)


def test_fetch_follows_redirects(allow_private, receiver):
    receiver.routes["/old"] = Answer(status=302, headers={"Location": "/new.txt"})
    receiver.routes["/new.txt"] = Answer(body=b"moved", headers={"Content-Type": "text/plain"})
    assert safe_fetch.fetch_url(f"{receiver.url}/old", field="url", max_bytes=100, timeout=5)[0] == b"moved"


def test_a_redirect_to_a_private_address_is_refused(settings, receiver, monkeypatch):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    # Pretend the receiver's address is public, so only the redirect target is private.
    monkeypatch.setattr(safe_fetch, "is_public_address", lambda address: address == "127.0.0.1")
    receiver.routes["/start"] = Answer(
        status=302, headers={"Location": f"http://[::1]:{receiver.port}/secret"}
    )
    with pytest.raises(ValidationError) as exc_info:
        safe_fetch.fetch_url(f"{receiver.url}/start", field="url", max_bytes=100, timeout=5)
    assert "not allowed" in error_of(exc_info)
    assert [r.path for r in receiver.requests] == ["/start"]


def test_dns_rebinding_is_refused_at_connect_time(settings, receiver, monkeypatch):
    """The name resolves to a public address when checked, then to loopback when connecting."""
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    answers = iter(["93.184.216.34", "127.0.0.1"])
    real = socket.getaddrinfo

    def rebinding(host, port, *args, **kwargs):
        if host == "rebind.example":
            address = next(answers, "127.0.0.1")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(safe_fetch.socket, "getaddrinfo", rebinding)
    with pytest.raises(ValidationError) as exc_info:
        safe_fetch.fetch_url(
            f"http://rebind.example:{receiver.port}/x", field="url", max_bytes=100, timeout=5
        )
    assert "not allowed" in error_of(exc_info)
    assert receiver.requests == []
