"""A number's proxy URL: what is accepted (socks5, socks5h, http, https; user:pass optional), and how it is shown."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.utils.translation import gettext as _

SCHEMES = ("socks5", "socks5h", "http", "https")
MAX_LENGTH = 500
MASK = "****"


def problem(value: str) -> str:
    """Why `value` is not a proxy URL we can use, or "" (an empty value is fine: no proxy)."""
    if not value:
        return ""
    if len(value) > MAX_LENGTH:
        return _("at most %(max)s characters.") % {"max": MAX_LENGTH}
    if any(ch.isspace() for ch in value) or "\x00" in value:
        return _("must not contain spaces.")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        return _("is not a proxy URL (%(reason)s).") % {"reason": exc}
    if parts.scheme.lower() not in SCHEMES:
        return _("must start with socks5://, socks5h://, http:// or https://.")
    if not parts.hostname:
        return _("needs the proxy's host, like socks5://proxy.example.com:1080.")
    if port is None:
        return _("needs the proxy's port, like socks5://proxy.example.com:1080.")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return _("takes only scheme, user:password, host and port (no path or query).")
    return ""


def normalize(value: str) -> str:
    """`value` as stored: trimmed, the scheme in lower case, no trailing slash. Check `problem` first."""
    value = (value or "").strip()
    if not value:
        return ""
    scheme, rest = value.split("://", 1)
    return f"{scheme.lower()}://{rest.rstrip('/')}"


def mask(value: str) -> str:
    """`value` with its password replaced by ****: what pages, API answers and the audit log show."""
    if not value:
        return ""
    try:
        parts = urlsplit(value)
        password = parts.password
    except ValueError:
        return MASK
    if password is None:
        return value
    netloc = parts.netloc
    userinfo, _, hostport = netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return value.replace(netloc, f"{user}:{MASK}@{hostport}", 1)


def keep_password(value: str, current: str) -> str:
    """`value` with a masked password (****, as pages and answers show it) replaced by `current`'s password:
    a proxy edited where it was shown (another host, say) keeps its password."""
    try:
        new, old = urlsplit(value), urlsplit(current)
        if new.password != MASK or old.password is None:
            return value
    except ValueError:
        return value
    user, _, hostport = new.netloc.rpartition("@")
    return value.replace(new.netloc, f"{user.split(':', 1)[0]}:{old.password}@{hostport}", 1)
