"""The neonize names we use, and how its values (JIDs, timestamps, errors) map to ours."""

from __future__ import annotations

import re
from types import SimpleNamespace

from django.utils.translation import gettext_noop as _noop

from messaging.whatsapp import protocol as p


def neonize_lib() -> SimpleNamespace:
    """The neonize names we use, imported on first need (loads the Go library)."""
    from neonize import exc
    from neonize.aioze import events as ev
    from neonize.aioze.client import ClientFactory, NewAClient
    from neonize.builder import build_edit
    from neonize.proto import Neonize_pb2 as np
    from neonize.proto.waCompanionReg.WAWebProtobufsCompanionReg_pb2 import DeviceProps
    from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as e2e
    from neonize.proto.waSyncAction import WAWebProtobufSyncAction_pb2 as sync
    from neonize.utils import enum, gen_vcard
    from neonize.utils.jid import Jid2String, JIDToNonAD

    return SimpleNamespace(
        exc=exc,
        ev=ev,
        ClientFactory=ClientFactory,
        NewAClient=NewAClient,
        build_edit=build_edit,
        np=np,
        DeviceProps=DeviceProps,
        e2e=e2e,
        sync=sync,
        enum=enum,
        gen_vcard=gen_vcard,
        Jid2String=Jid2String,
        JIDToNonAD=JIDToNonAD,
    )


# ---------------------------------------------------------------------------------------------- JIDs


def to_jid(value: str):
    """A neonize JID protobuf from "user@server" (or "user:device@server")."""
    lib = neonize_lib()
    user, _, server = value.rpartition("@")
    if not server:
        raise p.InvalidRequest(_noop("%(value)s is not a WhatsApp ID") % {"value": repr(value)})
    device = 0
    if ":" in user:
        user, dev = user.split(":", 1)
        device = int(dev) if dev.isdigit() else 0
    if "." in user and server == p.USER_SERVER:
        user = user.split(".", 1)[0]
    return lib.np.JID(User=user, Server=server, Device=device, RawAgent=0, Integrator=0, IsEmpty=False)


def jid_str(jid, *, keep_device: bool = False) -> str:
    """The "user@server" of a neonize JID (device part dropped unless asked); "" for an empty JID."""
    if jid is None or not jid.User:
        return ""
    if keep_device and jid.Device:
        return f"{jid.User}:{jid.Device}@{jid.Server}"
    return f"{jid.User}@{jid.Server}"


def _phone_jid(jid, alt) -> str:
    """Prefer the phone-number JID over a hidden-user (@lid) one when WhatsApp told us both."""
    if jid is not None and jid.Server == p.LID_SERVER and alt is not None and alt.User:
        return jid_str(alt)
    return jid_str(jid)


def _lid_jid(jid, alt) -> str:
    """The hidden user ID (…@lid) among a JID and its alternate address, "" when WhatsApp named none."""
    for candidate in (jid, alt):
        if candidate is not None and candidate.Server == p.LID_SERVER and candidate.User:
            return jid_str(candidate)
    return ""


def _seconds(value) -> float:
    """WhatsApp timestamps arrive in s, ms or µs depending on the call; make them unix seconds."""
    value = float(value or 0)
    if value > 1e14:
        return value / 1e6
    if value > 1e11:
        return value / 1e3
    return value


# ---------------------------------------------------------------------------------------------- errors


# whatsmeow's errors reach Python as text only: its IQ errors read "info query returned status 403: forbidden",
# the others are fixed sentences (ErrNotConnected, ErrNotLoggedIn, ErrGroupNotFound, ErrInviteLinkRevoked...).
_STATUS_RE = re.compile(r"\b(?:status(?: code)?|error) (\d{3})\b")
_STATUS_ERRORS = {
    400: p.InvalidRequest,
    401: p.Forbidden,
    403: p.Forbidden,
    404: p.NotFound,
    406: p.InvalidRequest,
}
_STATUS_ERRORS |= {408: p.UpstreamTimeout, 409: p.InvalidRequest, 410: p.NotFound, 463: p.ReachoutTimelock}
_PHRASES: tuple[tuple[tuple[str, ...], type[p.WhatsAppError]], ...] = (
    (("not logged in", "doesn't contain a device jid"), p.NotLoggedIn),
    (("not connected", "websocket is closed"), p.NotConnected),
    (("timed out", "timeout", "deadline exceeded"), p.UpstreamTimeout),
    (
        ("forbidden", "not-authorized", "not authorized", "not an admin", "permission", "not participating"),
        p.Forbidden,
    ),
    # "the user has hidden their profile picture from you": for us, as for the viewer, no picture.
    (("not found", "item-not-found", "does not have", "no such", "hidden their profile picture"), p.NotFound),
    (
        ("bad-request", "invalid", "not valid", "revoked", "cannot identify image", "not-acceptable"),
        p.InvalidRequest,
    ),
)


def translate_error(exc: Exception) -> p.WhatsAppError:
    """A neonize/whatsmeow failure as one of our errors, by what its message says."""
    if isinstance(exc, p.WhatsAppError):
        return exc
    text = str(exc) or type(exc).__name__
    low = text.lower()
    status = _STATUS_RE.search(low)
    if status and int(status.group(1)) in _STATUS_ERRORS:
        return _STATUS_ERRORS[int(status.group(1))](text)
    for phrases, error in _PHRASES:
        if any(phrase in low for phrase in phrases):
            return error(text)
    return p.WhatsAppError(text, code=p.ErrorCode.UPSTREAM)


# Per-participant codes of a group participants change.
_PARTICIPANT_ERRORS = {
    401: "not allowed",
    403: "not allowed (privacy settings, or we are not an admin)",
    404: "not on WhatsApp or not in the group",
    408: "they left the group recently",
    409: "already in that state (member, admin...)",
    500: "the group is full",
}
