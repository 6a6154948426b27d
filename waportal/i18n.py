"""Texts made in English where no request's language is known (a session worker, the simulated network, a
stored failure reason), put into the reader's language when shown.

Such a text is one of our catalogue's messages, marked with gettext_noop where it is raised, and filled in
with `%(name)s` values. `localize` finds the message it was made from and translates it, values and all; a
text of no message of ours comes back as it was.
"""

from __future__ import annotations

import functools
import gettext
import re
from pathlib import Path

from django.conf import settings
from django.utils.translation import gettext as _

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


@functools.cache
def _templates() -> tuple[tuple[str, re.Pattern], ...]:
    """Every message of our catalogue that takes values, the most specific (longest fixed text) first."""
    msgids: set[str] = set()
    for directory in settings.LOCALE_PATHS:
        for mo in Path(directory).glob("*/LC_MESSAGES/django.mo"):
            with open(mo, "rb") as fh:
                msgids.update(k for k in gettext.GNUTranslations(fh)._catalog if isinstance(k, str))
    out = []
    for msgid in msgids:
        if not _PLACEHOLDER.search(msgid):
            continue
        pattern, seen, pos = [], set(), 0
        for m in _PLACEHOLDER.finditer(msgid):
            pattern.append(re.escape(msgid[pos : m.start()].replace("%%", "%")))
            name = m.group(1)
            pattern.append(f"(?P={name})" if name in seen else f"(?P<{name}>.+?)")
            seen.add(name)
            pos = m.end()
        pattern.append(re.escape(msgid[pos:].replace("%%", "%")))
        fixed = len(_PLACEHOLDER.sub("", msgid))
        out.append((fixed, msgid, re.compile("".join(pattern), re.S)))
    out.sort(key=lambda t: -t[0])
    return tuple((msgid, regex) for _fixed, msgid, regex in out)


def localize(text, depth: int = 2) -> str:
    """`text` in the active language when it is one of our messages (with its values localized too)."""
    text = str(text or "")
    if not text:
        return text
    translated = _(text)
    if translated != text or depth <= 0:
        return translated
    for msgid, regex in _templates():
        match = regex.fullmatch(text)
        if match:
            values = {k: localize(v, depth - 1) for k, v in match.groupdict().items()}
            try:
                return _(msgid) % values
            except (KeyError, ValueError, TypeError):
                return text
    return text
