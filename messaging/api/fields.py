"""Input types shared by the API's schemas: recipients made JIDs, numbers that may come as strings, flags.

Each identifier type has one regular expression that the OpenAPI document publishes as its `pattern` and that
its validator enforces, so the document and the server agree on every value: nothing the pattern allows is
refused for its shape, nothing else is accepted. Surrounding blanks are allowed (and dropped): a `+` in an
unencoded query string arrives as a space.
"""

from __future__ import annotations

import re
from typing import Annotated

from ninja import Schema
from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema, model_validator

from messaging.whatsapp import protocol

_BLANK = r"[ \t\r\n]*"
# What Python's str.strip() drops, spelled out: `\s` means other things in other regex engines (in ECMA-262's,
# which JSON Schema names, \x1c-\x1f are not blanks), and the document must mean the same everywhere.
_BLANKS = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NON_BLANK = f"[^{_BLANKS}]"
# 7 to 15 digits with the country code, an optional leading +, and spaces, dashes, dots or brackets between.
PHONE = r"\+?[0-9](?:[ ().-]*[0-9]){6,14}"
USER_JID = r"[0-9]{1,20}(?::[0-9]{1,5})?@s\.whatsapp\.net"  # `:N` names one of the user's devices
LID_JID = r"[0-9]{1,20}(?::[0-9]{1,5})?@lid"
GROUP_ID = r"[0-9]{1,30}(?:-[0-9]{1,30})?"  # 1203...; old groups are <creator phone>-<timestamp>
GROUP_JID = GROUP_ID + r"@g\.us"
NEWSLETTER_JID = r"[0-9]{1,30}@newsletter"
BROADCAST_JID = r"(?:status|[0-9]{1,30})@broadcast"


def pattern(*alternatives: str, optional: bool = False) -> str:
    """The anchored pattern of one of `alternatives`, blanks around it allowed (and nothing but blanks if optional)."""
    inner = f"(?:{'|'.join(alternatives)})" + ("?" if optional else "")
    return f"^{_BLANK}{inner}{_BLANK}$"


CHAT_PATTERN = pattern(PHONE, USER_JID, LID_JID, GROUP_JID, NEWSLETTER_JID, BROADCAST_JID)
MENTION_PATTERN = pattern(PHONE, USER_JID, LID_JID, "@[Ee][Vv][Ee][Rr][Yy][Oo][Nn][Ee]")
PARTICIPANT_PATTERN = pattern(PHONE, USER_JID, LID_JID)
PHONE_PATTERN = pattern(PHONE, r"[0-9]{7,15}@s\.whatsapp\.net")
GROUP_PATTERN = pattern(GROUP_ID + r"(?:@g\.us)?")
NEWSLETTER_PATTERN = pattern(NEWSLETTER_JID)
# What the X-Device-Id header and the device_id query parameter take: a device ID, or the device's number.
DEVICE_PATTERN = pattern(r"[0-9]{1,18}", PHONE, USER_JID, optional=True)
DEVICE_PATH_PATTERN = pattern(r"[0-9]{1,18}", PHONE, USER_JID)
_PORT = r"(?:[0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
# http(s), a host (no user name or password), a port if any, then anything without blanks.
URL = rf"[Hh][Tt][Tt][Pp][Ss]?://[^{_BLANKS}/?#@\[\]:]+(?::{_PORT})?(?:[/?#]{NON_BLANK}*)?"
URL_PATTERN = pattern(URL)
INVITE_PATTERN = pattern(
    r"(?:[Hh][Tt][Tt][Pp][Ss]?://)?chat\.whatsapp\.com/(?:invite/)?[A-Za-z0-9_-]{4,64}/?",
    r"[A-Za-z0-9_-]{4,64}",
)

NOT_BLANK = NON_BLANK  # somewhere a character that is not a blank
EMOJI_PATTERN = pattern(NON_BLANK + "{0,16}")
MESSAGE_ID_PATTERN = pattern(f"[^{_BLANKS}/]{{1,128}}")
# 1 to 100 characters, blanks around them dropped ([\s\S]: any character, whatever \s means)
OPTION_PATTERN = pattern(rf"{NON_BLANK}(?:[\s\S]{{0,98}}{NON_BLANK})?")

EXAMPLE_PHONE = "905551234567"
EXAMPLE_GROUP = "120363000000000000@g.us"


def _checked(value: str, regex: str, normalize, refusal: str) -> str:
    """`normalize(value)` (blanks dropped) if `value` matches `regex`; else ValueError saying what it is not."""
    # re.search, as JSON Schema applies a pattern (and as schemathesis generates from it).
    if not re.search(regex, value):
        raise ValueError(f"{value.strip()!r} {refusal}")
    return normalize(value.strip())


def as_jid(value: str) -> str:
    """A JID (of a pattern above) as WhatsApp writes it, or a phone number (its separators dropped) as a user JID."""
    if "@" in value:
        return protocol.normalize_jid(value)
    return f"{re.sub(r'[^0-9]', '', value)}@{protocol.USER_SERVER}"


def _textual(value):
    # Existing clients send numbers unquoted now and then (905xxxxxxxxx as a JSON number; 905xxxxxxxxx.0 is the
    # same JSON integer).
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _chat(value: str) -> str:
    return _checked(
        value, CHAT_PATTERN, as_jid, "is not a phone number or a WhatsApp ID (like 905xxxxxxxxx or ID@g.us)"
    )


def _participant(value: str) -> str:
    return _checked(value, PARTICIPANT_PATTERN, as_jid, "is not a phone number (like 905xxxxxxxxx)")


def _group_jid(value: str) -> str:
    return value if "@" in value else f"{value}@{protocol.GROUP_SERVER}"


def _group(value: str) -> str:
    return _checked(value, GROUP_PATTERN, _group_jid, "is not a group ID (like 1203...@g.us)")


def _newsletter(value: str) -> str:
    return _checked(
        value, NEWSLETTER_PATTERN, lambda v: v, "is not a newsletter ID (like 1203...@newsletter)"
    )


def _digits(value: str) -> str:
    return _checked(
        value,
        PHONE_PATTERN,
        lambda v: re.sub(r"[^0-9]", "", v.removesuffix(f"@{protocol.USER_SERVER}")),
        "is not a phone number (country code and number, e.g. 905xxxxxxxxx)",
    )


def _url(value: str) -> str:
    return _checked(value, URL_PATTERN, lambda v: v, "is not an http(s) URL")


def _media_url(value: str | None) -> str | None:
    return None if value is None else _url(value)


def _invite(value: str) -> str:
    return _checked(
        value,
        INVITE_PATTERN,
        lambda v: v,
        "is not a WhatsApp invite link (like https://chat.whatsapp.com/CODE)",
    )


def _required_text(value: str) -> str:
    if not re.search(NOT_BLANK, value):
        raise ValueError("must not be empty")
    return value


def _emoji(value: str) -> str:
    return _checked(value, EMOJI_PATTERN, lambda v: v, "is not one emoji (or empty, to remove the reaction)")


def _option(value: str) -> str:
    return _checked(
        value, OPTION_PATTERN, lambda v: v, "is not an option: 1 to 100 characters, not all blanks"
    )


def _documented(regex: str, example: str, description: str, *, numbers: tuple[int, int] | None = None):
    """The JSON schema the document shows: a string of `regex`, or (existing clients) a JSON number in range."""
    text = {"type": "string", "pattern": regex, "examples": [example], "description": description}
    if numbers is None:
        return WithJsonSchema(text)
    number = {"type": "integer", "minimum": numbers[0], "maximum": numbers[1]}
    return WithJsonSchema({"anyOf": [text, number], "examples": [example], "description": description})


_PHONE_NUMBERS = (10**6, 10**15 - 1)  # 7 to 15 digits

# A chat: a full JID (user, group, newsletter, ...) or a phone number.
Jid = Annotated[
    str,
    BeforeValidator(_textual),
    AfterValidator(_chat),
    _documented(
        CHAT_PATTERN,
        EXAMPLE_PHONE,
        "A phone number with country code (905xxxxxxxxx; +, spaces and dashes allowed) or a WhatsApp ID "
        "(905xxxxxxxxx@s.whatsapp.net, ID@g.us, ID@newsletter, ID@lid).",
        numbers=_PHONE_NUMBERS,
    ),
]
GroupJid = Annotated[
    str,
    BeforeValidator(_textual),
    AfterValidator(_group),
    _documented(
        GROUP_PATTERN,
        EXAMPLE_GROUP,
        "A group ID: 1203...@g.us (the @g.us may be left out).",
        numbers=(0, 10**30 - 1),
    ),
]
NewsletterJid = Annotated[
    str,
    AfterValidator(_newsletter),
    _documented(NEWSLETTER_PATTERN, "120363000000000000@newsletter", "A newsletter ID: 1203...@newsletter."),
]
PhoneDigits = Annotated[
    str,
    BeforeValidator(_textual),
    AfterValidator(_digits),
    _documented(
        PHONE_PATTERN,
        EXAMPLE_PHONE,
        "A phone number with country code (905xxxxxxxxx; +, spaces and dashes allowed).",
        numbers=_PHONE_NUMBERS,
    ),
]
Participant = Annotated[
    str,
    BeforeValidator(_textual),
    AfterValidator(_participant),
    _documented(
        PARTICIPANT_PATTERN,
        EXAMPLE_PHONE,
        "A person: a phone number with country code, or their WhatsApp ID (…@s.whatsapp.net, …@lid).",
        numbers=_PHONE_NUMBERS,
    ),
]
HttpUrl = Annotated[
    str,
    AfterValidator(_url),
    _documented(URL_PATTERN, "https://example.com/page", "An http(s) URL."),
]
# A file named by URL instead of uploaded; fetched by the server (public addresses only, size-capped).
MediaUrl = Annotated[
    str | None,
    AfterValidator(_media_url),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": URL_PATTERN,
            "format": "uri",
            "examples": ["https://example.com/picture.jpg"],
            "description": "The file's http(s) URL, instead of uploading it (public addresses only).",
        }
    ),
]
InviteLink = Annotated[
    str,
    AfterValidator(_invite),
    _documented(
        INVITE_PATTERN,
        "https://chat.whatsapp.com/AbCdEfGhIjKlMn",
        "A group invite link (https://chat.whatsapp.com/CODE) or its code.",
    ),
]


def text(max_length: int):
    """Text of at most `max_length` characters that is not all blanks (`\\S`: Python's blanks, what strip drops)."""
    return Annotated[
        str,
        AfterValidator(_required_text),
        Field(max_length=max_length, json_schema_extra={"pattern": NOT_BLANK}),
    ]


Text = text(65536)
# A reaction: one emoji (WhatsApp checks it), at most 16 characters and no blanks; empty removes it.
MessageId = Annotated[
    str,
    AfterValidator(lambda v: _checked(v, MESSAGE_ID_PATTERN, lambda x: x, "is not a WhatsApp message ID")),
    _documented(MESSAGE_ID_PATTERN, "3EB0A1B2C3D4E5F6A7B8C9", "A message's ID, as the send answered it."),
]
Emoji = Annotated[str, AfterValidator(_emoji), WithJsonSchema({"type": "string", "pattern": EMOJI_PATTERN})]
PollOption = Annotated[
    str, AfterValidator(_option), WithJsonSchema({"type": "string", "pattern": OPTION_PATTERN})
]


class JsonObject(Schema):
    """A JSON body whose fields are all optional: anything but an object is refused (not read as no fields)."""

    @model_validator(mode="before")
    @classmethod
    def _an_object(cls, value):
        # django-ninja hands its schemas the input wrapped (DjangoGetter), to read attributes of any object.
        if not isinstance(getattr(value, "_obj", value), dict):
            raise ValueError("the body must be a JSON object")
        return value


# A device named in a path (/devices/{device_id}): its ID, its JID or its phone number, as in X-Device-Id.
DeviceRef = Annotated[
    str,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": DEVICE_PATH_PATTERN,
            "examples": ["1"],
            "description": "The device's ID, JID or number.",
        }
    ),
]
