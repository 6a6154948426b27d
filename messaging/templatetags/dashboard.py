"""Template helpers of the dashboard: people and chats by name and formatted number, never by raw JID, and
`{% sandbox_enabled as flag %}` (is the simulated network the backend).

The names come from the view, looked up in bulk (`messaging.selectors.names.names_for`): a tag never queries.
"""

from __future__ import annotations

import phonenumbers
from django import template
from django.conf import settings
from django.utils.html import format_html
from django.utils.translation import gettext as _

register = template.Library()

USER_SERVERS = ("s.whatsapp.net", "c.us")


@register.simple_tag
def sandbox_enabled() -> bool:
    return getattr(settings, "WA_BACKEND", "") == "sandbox"


@register.filter
def phone(jid: str) -> str:
    """`905551234567@s.whatsapp.net` (or a bare number) as `+90 555 123 45 67`; a group, a LID or a
    newsletter as "" (they have no number), anything unparsable as its digits with a "+"."""
    if not jid:
        return ""
    user, _at, server = str(jid).partition("@")
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
    if server == "lid":
        return _("Hidden number")
    return ""


@register.filter
def audit_action(code: str) -> str:
    """An audit action code as words ("message.queue" → "Sent a message")."""
    from accounts.audit_actions import label

    return label(code)


@register.filter
def jid_or_text(value) -> str:
    """A value that is a person's JID as their formatted number; anything else as it is."""
    if isinstance(value, str) and value.endswith(USER_SERVERS_SUFFIXES):
        return phone(value) or value
    return value


USER_SERVERS_SUFFIXES = tuple("@" + server for server in USER_SERVERS)


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
    number = phone(chat.jid)
    return number if number != chat_title(chat) else ""


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
