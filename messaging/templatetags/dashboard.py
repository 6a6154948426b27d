"""Template helpers of the dashboard: people and chats by name and formatted number, never by raw JID, and
`{% sandbox_enabled as flag %}` (is the simulated network the backend).

The names come from the view, looked up in bulk (`messaging.selectors.names.names_for`): a tag never queries.
"""

from __future__ import annotations

import functools
from urllib.parse import quote

import phonenumbers
from django import template
from django.conf import settings
from django.urls import get_script_prefix, reverse
from django.utils.html import format_html
from django.utils.http import RFC3986_SUBDELIMS
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from waportal.i18n import localize

register = template.Library()

USER_SERVERS = ("s.whatsapp.net", "c.us")
_URL_PATTERNS: dict[tuple[str, str], str] = {}
_STR_FIELDS = {"action", "jid"}  # a URL's last argument may be a str (<str:...>); the others are ints
_PATH_SAFE = RFC3986_SUBDELIMS + "/~:@"  # what reverse() leaves unquoted in a path (django.urls.resolvers)


def _url_pattern(name: str, fields: tuple[str, ...]) -> str:
    """The URL named `name` as a str.format pattern of `fields` (its int arguments in order, a last str one
    allowed, see _STR_FIELDS): reversed once per script prefix, where {% url %} reverses on every use."""
    key = (get_script_prefix(), name)
    pattern = _URL_PATTERNS.get(key)
    if pattern is None:
        marks = [str(9999999901 + i) for i in range(len(fields))]
        args = [int(mark) for mark in marks]
        if fields[-1] in _STR_FIELDS:
            marks[-1] = args[-1] = "STRFIELD"
        url = reverse(name, args=args)
        for mark, field in zip(marks, fields, strict=True):
            url = url.replace(mark, "{" + field + "}")
        pattern = _URL_PATTERNS[key] = url
    return pattern


@register.simple_tag
def message_url(message, action: str) -> str:
    """The URL of one of a message's actions ("download" for its file, "menu" for its ⋯ menu), as {% url %}
    would give it, from a pattern reversed once: a conversation page reversed about seven URLs for each of its
    messages, a fifth of its time."""
    return _url_pattern("messaging:message_action", ("device", "chat", "message", "action")).format(
        device=message.device_id, chat=message.chat_id, message=message.pk, action=action
    )


@register.simple_tag
def conversation_url(chat) -> str:
    """{% url 'messaging:conversation' chat.device_id chat.pk %}, from a pattern reversed once (two for each
    row of the chat list)."""
    return _url_pattern("messaging:conversation", ("device", "chat")).format(
        device=chat.device_id, chat=chat.pk
    )


@register.simple_tag
def sandbox_enabled() -> bool:
    return getattr(settings, "WA_BACKEND", "") == "sandbox"


@register.filter
def phone(jid: str) -> str:
    """`905551234567@s.whatsapp.net` (or a bare number) as `+90 555 123 45 67`; a group, a LID or a
    newsletter as "" (they have no number), anything unparsable as its digits with a "+"."""
    return _formatted_number(str(jid)) if jid else ""


@functools.lru_cache(maxsize=16384)
def _formatted_number(jid: str) -> str:
    """(Remembered: a chat row asks it up to four times, for its title, avatar and subtitle, and the
    phonenumbers library parses the number anew each time.)"""
    user, _at, server = jid.partition("@")
    if server and server not in USER_SERVERS:
        return ""
    digits = user.split(":", 1)[0].split(".", 1)[0]
    if not digits.isdigit():
        return ""
    try:
        parsed = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException:
        return "+" + digits
    if not phonenumbers.is_possible_number(parsed):
        return "+" + digits
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def _jid_kind_label(jid: str) -> str:
    server = str(jid).partition("@")[2]
    if server == "g.us":
        return _("Group")
    if server == "newsletter":
        return _("Channel")
    if server == "lid":  # WhatsApp has not told this number who it is: never shown as a number
        return _("Unknown number (LID)")
    return ""


@register.filter
def audit_action(code: str) -> str:
    """An audit action code as words ("message.queue" → "Sent a message")."""
    from accounts.audit_actions import label

    return label(code)


@register.filter
def audit_object_type(object_type: str) -> str:
    """What an audit entry is about as a word ("messaging.device" → "Number"); "" for a kind with no word."""
    from accounts.audit_actions import object_type_label

    return object_type_label(object_type)


@register.filter
def jid_or_text(value) -> str:
    """A value that is a person's JID as their formatted number; anything else as it is."""
    if isinstance(value, str) and value.endswith(USER_SERVERS_SUFFIXES):
        return phone(value) or value
    return value


USER_SERVERS_SUFFIXES = tuple("@" + server for server in USER_SERVERS)


def is_jid(value) -> bool:
    return (
        isinstance(value, str)
        and "@" in value
        and " " not in value
        and value.rsplit("@", 1)[1] in JID_SERVERS
    )


JID_SERVERS = (*USER_SERVERS, "g.us", "lid", "newsletter", "broadcast")


def jids_in(value) -> set[str]:
    """The JIDs in an audit entry's value (a JID, or a list of them), for looking their names up at once."""
    if is_jid(value):
        return {value}
    if isinstance(value, list | tuple):
        return {v for v in value if is_jid(v)}
    return set()


@register.simple_tag
def audit_value(value, names: dict | None = None) -> str:
    """An audit entry's value as words: a JID (or a list of them) as "name (+90 555 …)", else as it is."""
    if isinstance(value, list | tuple) and any(is_jid(v) for v in value):
        return ", ".join(audit_value(v, names) for v in value)
    if not is_jid(value):
        return jid_or_text(value)
    name, number = (names or {}).get(value, ""), phone(value)
    if name and number and name != number:
        return f"{name} ({number})"
    return jid_name(value, names)


@register.simple_tag
def jid_name(jid: str, names: dict | None = None) -> str:
    """The best name of a JID: a known name, else its formatted number, else what kind of chat it is."""
    known = (names or {}).get(jid, "")
    return known or phone(jid) or _jid_kind_label(jid) or str(jid)


@register.simple_tag
def person(jid: str, names: dict | None = None):
    """A name with the formatted number beneath (just the number when no name is known)."""
    name = (names or {}).get(jid, "")
    number = phone(jid)
    if name and number and name != number:
        return format_html('<span class="person"><span>{}</span><small>{}</small></span>', name, number)
    return format_html('<span class="person"><span>{}</span></span>', jid_name(jid, names))


@register.simple_tag
def chat_title(chat) -> str:
    """A chat's name: its own, a contact's (put on it by the view as `known_name`), else its number."""
    return (
        chat.name
        or getattr(chat, "known_name", "")
        or phone(chat.jid)
        or _jid_kind_label(chat.jid)
        or chat.jid
    )


@register.simple_tag
def chat_subtitle(chat) -> str:
    """Beneath a chat's name: its formatted number, or that it is a group."""
    if chat.is_group:
        return _("Group")
    if chat.jid.endswith("@lid"):
        label = _jid_kind_label(chat.jid)
        return label if label != chat_title(chat) else ""
    number = phone(chat.jid)
    return number if number != chat_title(chat) else ""


# ------------------------------------------------------------------------------------------ a message's parts


@register.filter
def plays_inline(message) -> bool:
    """Whether a message's stored file is one the download route shows in the page (a picture, sound or film
    its bytes prove: `downloads.shows_inline`), so that a thumbnail or a player may point at it."""
    from messaging.services.downloads import shows_inline

    return bool(message.media) and shows_inline(message.media_mime)


@register.filter
def map_url(payload) -> str:
    """The OpenStreetMap page of a location message's point (its `payload`), or "" when it has none."""
    payload = payload or {}
    try:
        lat, lon = float(payload.get("latitude")), float(payload.get("longitude"))
    except (TypeError, ValueError):
        return ""
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return ""
    return f"https://www.openstreetmap.org/?mlat={lat:.6f}&mlon={lon:.6f}#map=16/{lat:.6f}/{lon:.6f}"


@register.filter
def place_name(message) -> str:
    """A location message's place: the name (or address) it carries, else its text (how WhatsApp sends it)."""
    payload = message.payload or {}
    return payload.get("name") or payload.get("address") or message.text or ""


@register.simple_tag
def poll_results(message, names: dict | None = None) -> dict:
    """A poll's options with who chose each (by name) and how many, from the votes kept on it (voter JID ->
    option texts); `voters`: how many people voted. A choice the poll does not list (unknown to us) is not
    counted against any option."""
    payload = message.payload or {}
    votes = payload.get("poll_votes") or {}
    rows = [{"option": option, "voters": []} for option in payload.get("poll_options") or []]
    by_option = {row["option"]: row for row in rows}
    for voter, chosen in votes.items():
        for option in chosen or []:
            if option in by_option:
                by_option[option]["voters"].append(jid_name(voter, names))
    for row in rows:
        row["count"] = len(row["voters"])
    return {"rows": rows, "voters": len(votes)}


@register.simple_tag
def initials(name: str) -> str:
    """Up to two letters of a name for an avatar with no picture ("Ayşe Yılmaz" → "AY"; "+90 555…" → "#")."""
    words = [w for w in str(name or "").split() if w[:1].isalpha()]
    if not words:
        return "#"
    letters = words[0][:1] + (words[-1][:1] if len(words) > 1 else "")
    return letters.upper()


@register.simple_tag
def avatar(device_id, jid: str, name: str = "", css_class: str = ""):
    """A round avatar: the picture of `jid` as the number `device_id` sees it (messaging.views.avatars, loaded
    lazily) over the initials of `name`, which show where there is no picture (or where it fails to load:
    static/js/waportal.js drops an <img> that errs). Decoration: hidden from screen readers, which read the
    name beside it. Nothing here asks WhatsApp: a page of a hundred rows renders as fast without pictures."""
    classes = f"avatar-badge {css_class}".strip()
    if not jid:
        return format_html(
            '<span class="{}" aria-hidden="true"><span>{}</span></span>', classes, initials(name)
        )
    if "/" in jid:  # (no JID has one; reverse() says what the URL cannot hold)
        url = reverse("messaging:avatar", args=[device_id, jid])
    else:  # a pattern reversed once, filled as reverse() fills it: one per row of the chat list
        url = _url_pattern("messaging:avatar", ("device", "jid")).format(
            device=device_id, jid=quote(jid, safe=_PATH_SAFE)
        )
    return format_html(
        '<span class="{}" aria-hidden="true"><span>{}</span>'
        '<img src="{}" alt="" loading="lazy" decoding="async" width="40" height="40"></span>',
        classes,
        initials(name),
        url,
    )


@register.simple_tag
def chat_avatar(chat):
    """An inbox row's avatar: the chat's picture over its initials (see `avatar`)."""
    return avatar(
        chat.device_id,
        chat.jid,
        chat_title(chat),
        "chat-avatar avatar-group" if chat.is_group else "chat-avatar",
    )


@register.filter
def chat_when(value) -> str:
    """When a chat last moved, in as little room as a phone's row has: the time today, "Yesterday", the day and
    month this year, else the short date (the full moment is in the row's title). Rendered when the row is:
    a page left open overnight keeps saying yesterday's time until its row next changes."""
    if not value:
        return ""
    from django.utils import timezone
    from django.utils.dateformat import format as date_format
    from django.utils.formats import date_format as localized

    when = timezone.localtime(value)
    today = timezone.localdate()
    day = when.date()
    if day == today:
        return date_format(when, "H:i")  # as the conversation's messages say it
    if (today - day).days == 1:
        return _("Yesterday")
    if day.year == today.year and day < today:
        return date_format(when, "j M")
    return localized(when, "SHORT_DATE_FORMAT")


@register.filter(name="localize_text")
def localize_text(text) -> str:
    """A stored English text of ours (a failure reason) in the reader's language."""
    return localize(text)


# WhatsApp's raw values, as words (privacy settings: who may see or do it; a newsletter follower's role).
_WHATSAPP_VALUES = {
    "all": gettext_lazy("Everyone"),
    "contacts": gettext_lazy("My contacts"),
    "contact_blacklist": gettext_lazy("My contacts, except those excluded"),
    "none": gettext_lazy("Nobody"),
    "match_last_seen": gettext_lazy("Same as last seen"),
    "known": gettext_lazy("Known numbers"),
    "owner": gettext_lazy("owner"),
    "admin": gettext_lazy("admin"),
    "subscriber": gettext_lazy("subscriber"),
    "guest": gettext_lazy("guest"),
}


@register.filter
def whatsapp_value(value) -> str:
    """A raw value WhatsApp gives (`all`, `contacts`, `subscriber`, ...) in the reader's words."""
    text = str(value or "")
    return str(_WHATSAPP_VALUES.get(text.lower(), text))


@register.simple_tag
def chat_initials(chat) -> str:
    """What a chat's avatar shows without a picture: the first letters of its name's first two words
    ("Ayşe Yılmaz" → "AY"), "#" for a number with no name."""
    words = [w for w in str(chat_title(chat)).split() if w[:1].isalpha()]
    if not words:
        return "#"
    return "".join(w[0] for w in words[:2]).upper()


@register.filter
def member_name(user) -> str:
    """A member as a teammate reads them: their full name, else their e-mail address."""
    if user is None:
        return ""
    return user.get_full_name() or user.email
