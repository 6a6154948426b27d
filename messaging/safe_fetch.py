"""Outbound HTTP to addresses users give us (webhook targets, media URLs) that cannot be turned against our network.

A URL is checked when it is entered (`validate_public_url`) and again at connect time: `GuardedTransport`
resolves the host itself, refuses private, loopback, link-local, multicast and reserved addresses, and
connects to the address it checked. So a name that resolved to a public address when saved and to
127.0.0.1 later (DNS rebinding) is still refused, before a byte of the request is sent.
`settings.WEBHOOK_ALLOW_PRIVATE_TARGETS` lifts the address check for self-hosted installs (and tests).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from email.message import Message as _HeaderParser
from pathlib import PurePosixPath
from urllib.parse import unquote, urljoin, urlsplit

import httpcore
import httpx
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop as _noop

ALLOWED_SCHEMES = ("http", "https")
MAX_REDIRECTS = 5
USER_AGENT = "waportal/1.0 (+webhooks)"


class UnsafeTarget(httpx.ConnectError):
    """The host resolved to an address we refuse to connect to (raised while connecting)."""


def private_targets_allowed() -> bool:
    return bool(getattr(settings, "WEBHOOK_ALLOW_PRIVATE_TARGETS", False))


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        # ::ffff:10.0.0.1 and 64:ff9b::10.0.0.1 reach the IPv4 address inside them.
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip.sixtofour is not None:
            ip = ip.sixtofour
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def resolve(host: str, port: int | None = None) -> list[str]:
    """Every address `host` resolves to (an IP literal resolves to itself)."""
    host = host.strip("[]")
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    infos = socket.getaddrinfo(host, port or 0, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for info in infos:
        address = info[4][0]
        if address not in seen:
            seen.append(address)
    return seen


def checked_addresses(host: str, port: int | None = None) -> list[str]:
    """Resolve `host` and refuse it if any address is not public (unless private targets are allowed)."""
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError) as exc:
        raise UnsafeTarget(
            _noop("%(host)s does not resolve: %(reason)s") % {"host": host, "reason": exc}
        ) from exc
    if not addresses:
        raise UnsafeTarget(_noop("%(host)s does not resolve") % {"host": host})
    if not private_targets_allowed():
        refused = [a for a in addresses if not is_public_address(a)]
        if refused:
            raise UnsafeTarget(
                _noop("%(host)s resolves to a private or reserved address (%(refused)s)")
                % {"host": host, "refused": refused[0]}
            )
    return addresses


def _refuse(field: str, message: str, code: str) -> ValidationError:
    """ValidationError({field: message}) whose code says why: invalid_url, private_target, unresolvable,
    bad_status, too_large, timeout, unreachable, too_many_redirects (callers map too_large to 413)."""
    return ValidationError({field: ValidationError(message, code=code)})


def validate_public_url(url: str, *, field: str) -> str:
    """Check a URL a user entered: http(s), a host that resolves, and only to public addresses.

    Returns the URL stripped of surrounding blanks; raises ValidationError({field: message}).
    """
    url = (url or "").strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _refuse(field, _("Enter a valid URL."), "invalid_url") from None
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        raise _refuse(field, _("Only http and https URLs are allowed."), "invalid_url")
    if not parts.hostname:
        raise _refuse(field, _("Enter a valid URL."), "invalid_url")
    if parts.username or parts.password:
        raise _refuse(field, _("A URL must not carry a user name or password."), "invalid_url")
    try:
        addresses = resolve(parts.hostname, port)
    except (OSError, UnicodeError):
        raise _refuse(field, _("The host of this URL does not resolve."), "unresolvable") from None
    if not addresses:
        raise _refuse(field, _("The host of this URL does not resolve."), "unresolvable")
    if not private_targets_allowed() and not all(is_public_address(a) for a in addresses):
        raise _refuse(
            field, _("Private, loopback and link-local addresses are not allowed."), "private_target"
        )
    return url


class _GuardedBackend(httpcore.NetworkBackend):
    """httpcore network backend that connects only to addresses it has checked itself."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        last_error: Exception | None = None
        for address in checked_addresses(host, port):
            try:
                # TLS still verifies against the URL's host name: httpcore passes the origin's host as
                # server_hostname when it starts TLS, not the address we connect to.
                return self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except httpcore.ConnectError as exc:
                last_error = exc
        raise last_error or httpcore.ConnectError(f"cannot connect to {host}")

    def connect_unix_socket(self, *args, **kwargs):  # never: targets are URLs
        raise httpcore.ConnectError("unix sockets are not allowed")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    """httpx transport whose connections go through `_GuardedBackend` (no proxies, no unix sockets)."""

    def __init__(self, *, max_connections: int = 20, max_keepalive: int = 10) -> None:
        super().__init__(trust_env=False)
        # The only way to hand httpx a network backend is to build its connection pool ourselves.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=max_connections,
            max_keepalive_connections=max_keepalive,
            keepalive_expiry=30.0,
            network_backend=_GuardedBackend(),
        )


def guarded_client(*, timeout: float, **kwargs) -> httpx.Client:
    """An httpx client for user-given URLs: guarded connections, no redirects, no environment proxies."""
    return httpx.Client(
        transport=GuardedTransport(),
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": USER_AGENT},
        **kwargs,
    )


_FILENAME_SAFE = re.compile(r"[^A-Za-z0-9._ -]+")


def _filename(response: httpx.Response, url: str) -> str:
    disposition = response.headers.get("content-disposition", "")
    name = ""
    if disposition:
        parser = _HeaderParser()
        parser["content-disposition"] = disposition
        name = parser.get_filename() or ""
    if not name:
        name = unquote(PurePosixPath(urlsplit(url).path).name)
    name = _FILENAME_SAFE.sub("_", PurePosixPath(name.replace("\\", "/")).name).strip(" .")
    return name[:120] or "file"


def fetch_url(url: str, *, field: str, max_bytes: int, timeout: float = 30.0) -> tuple[bytes, str, str]:
    """GET a user-given URL safely; returns (body, content type, file name). See `fetch_to_file`."""
    file, content_type, filename = fetch_to_file(url, field=field, max_bytes=max_bytes, timeout=timeout)
    with file:
        file.seek(0)
        return file.read(), content_type, filename


def fetch_to_file(
    url: str, *, field: str, max_bytes: int, timeout: float = 30.0
) -> tuple[TemporaryUploadedFile, str, str]:
    """GET a user-given URL safely into a temporary file; returns (file, content type, file name).

    Redirects are followed (at most MAX_REDIRECTS), each target checked like the first; the body is written
    to disk in chunks as it comes (a 100 MB document is never in memory) and refused once it passes
    `max_bytes`. The file is an upload as Django makes them: storage moves it into place. Every failure is a
    ValidationError naming `field`.
    """
    current = validate_public_url(url, field=field)
    too_large = _("The file is larger than %(max)s bytes.") % {"max": max_bytes}
    with guarded_client(timeout=timeout) as client:
        for _hop in range(MAX_REDIRECTS + 1):
            try:
                with client.stream("GET", current) as response:
                    if response.is_redirect:
                        location = response.headers.get("location", "")
                        current = validate_public_url(urljoin(current, location), field=field)
                        continue
                    if response.status_code >= 400:
                        message = _("The URL answered %(status)s.") % {"status": response.status_code}
                        raise _refuse(field, message, "bad_status")
                    declared = response.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > max_bytes:
                        raise _refuse(field, too_large, "too_large")
                    content_type = response.headers.get("content-type", "application/octet-stream")
                    content_type = content_type.split(";", 1)[0].strip() or "application/octet-stream"
                    filename = _filename(response, current)
                    file = TemporaryUploadedFile(filename, content_type, 0, None)
                    try:
                        for chunk in response.iter_bytes():
                            file.size += len(chunk)
                            if file.size > max_bytes:
                                raise _refuse(field, too_large, "too_large")
                            file.write(chunk)
                        file.flush()
                        file.seek(0)
                    except BaseException:
                        file.close()
                        raise
                    return file, content_type, filename
            except UnsafeTarget:
                message = _("Private, loopback and link-local addresses are not allowed.")
                raise _refuse(field, message, "private_target") from None
            except httpx.TimeoutException:
                raise _refuse(field, _("The URL did not answer in time."), "timeout") from None
            except httpx.HTTPError as exc:
                message = _("The URL could not be fetched: %(error)s") % {"error": exc}
                raise _refuse(field, message, "unreachable") from None
    raise _refuse(field, _("Too many redirects."), "too_many_redirects")
