"""A number's proxy URL: what is accepted (socks5, socks5h, http, https; user:pass optional), and how it is shown."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.utils.translation import gettext as _

SCHEMES = ("socks5", "socks5h", "http", "https")
MAX_LENGTH = 500
MASK = "****"
# Exactly what is accepted (the API documents it; `problem` says why a value is not): "" (no proxy), or a scheme
# of SCHEMES, an optional user[:password]@ (percent-encode an @ or / in them), a host and a port (1-65535).
_PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
PATTERN = (
    r"^$|^([Ss][Oo][Cc][Kk][Ss]5[Hh]?|[Hh][Tt][Tt][Pp][Ss]?)://"
    r"([^\s:@/]+(:[^\s@/]*)?@)?([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):" + _PORT + r"/?$"
)


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
    if not re.fullmatch(PATTERN, value):
        return _(
            "is not a proxy URL like socks5://user:password@proxy.example.com:1080 "
            "(percent-encode an @ or / in the user or password; the port is 1 to 65535)."
        )
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
