"""Input types shared by the API's schemas: recipients made JIDs, numbers that may come as strings, flags."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field

from messaging.whatsapp import protocol


def _textual(value):
    # Existing clients send numbers unquoted now and then (905xxxxxxxxx as a JSON number).
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _jid(value: str) -> str:
    return protocol.normalize_jid(value)


def _group(value: str) -> str:
    value = value.strip()
    if value and "@" not in value:
        value = f"{value}@{protocol.GROUP_SERVER}"
    jid = protocol.normalize_jid(value)
    if not protocol.is_group(jid):
        raise ValueError(f"{jid!r} is not a group ID (like 1203...@g.us)")
    return jid


def _newsletter(value: str) -> str:
    jid = protocol.normalize_jid(value)
    if not jid.endswith("@" + protocol.NEWSLETTER_SERVER):
        raise ValueError(f"{jid!r} is not a newsletter ID (like 1203...@newsletter)")
    return jid


def _digits(value: str) -> str:
    return protocol.normalize_phone(value)


def _required_text(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


# A chat: a full JID (user, group or newsletter) or bare digits (+, spaces, dashes allowed).
Jid = Annotated[
    str,
    BeforeValidator(_textual),
    AfterValidator(_jid),
    Field(examples=["905xxxxxxxxx@s.whatsapp.net"], max_length=200),
]
GroupJid = Annotated[
    str,
    BeforeValidator(_textual),
    AfterValidator(_group),
    Field(examples=["120363000000000000@g.us"], max_length=200),
]
NewsletterJid = Annotated[
    str,
    BeforeValidator(_textual),
    AfterValidator(_newsletter),
    Field(examples=["120363000000000000@newsletter"]),
]
PhoneDigits = Annotated[
    str, BeforeValidator(_textual), AfterValidator(_digits), Field(examples=["905xxxxxxxxx"])
]
Participant = Annotated[
    str, BeforeValidator(_textual), AfterValidator(_jid), Field(examples=["905xxxxxxxxx"])
]
Text = Annotated[str, AfterValidator(_required_text), Field(max_length=65536)]
