"""neonize's protobuf messages and answers as our protocol's dataclasses (messages in, groups, privacy...)."""

from __future__ import annotations

import base64

from messaging.whatsapp import protocol as p
from messaging.whatsapp.neonize.names import (
    _lid_jid,
    _phone_jid,
    _seconds,
    jid_str,
)

# ---------------------------------------------------------------------------------------------- messages in


_MEDIA_FIELDS = {
    "imageMessage": p.MessageKind.IMAGE,
    "videoMessage": p.MessageKind.VIDEO,
    "ptvMessage": p.MessageKind.VIDEO,
    "audioMessage": p.MessageKind.AUDIO,
    "documentMessage": p.MessageKind.DOCUMENT,
    "stickerMessage": p.MessageKind.STICKER,
}
_POLL_FIELDS = (
    "pollCreationMessage",
    "pollCreationMessageV2",
    "pollCreationMessageV3",
    "pollCreationMessageV4",
    "pollCreationMessageV5",
    "pollCreationMessageV6",
)
_WRAPPERS = (
    "ephemeralMessage",
    "viewOnceMessage",
    "viewOnceMessageV2",
    "viewOnceMessageV2Extension",
    "documentWithCaptionMessage",
    "editedMessage",
)
_VIEW_ONCE_WRAPPERS = ("viewOnceMessage", "viewOnceMessageV2", "viewOnceMessageV2Extension")
# Content that is bookkeeping, not a message anyone wrote: never stored as a chat message.
_SILENT_FIELDS = frozenset(
    {
        "senderKeyDistributionMessage",
        "messageContextInfo",
        "fastRatchetKeySenderKeyDistributionMessage",
        "keepInChatMessage",
        "encReactionMessage",  # decrypted by the client (Events._encrypted_reaction), not here
        "pinInChatMessage",
        "encEventResponseMessage",
        "placeholderMessage",
    }
)


def _unwrap(message) -> tuple[object, bool]:
    """The content message inside ephemeral/view-once/edit wrappers, and whether it was view-once."""
    view_once = False
    for _ in range(5):
        for name in _WRAPPERS:
            if message.HasField(name):
                view_once = view_once or name in _VIEW_ONCE_WRAPPERS
                message = getattr(message, name).message
                break
        else:
            return message, view_once
    return message, view_once


def text_of(message) -> str:
    """The human text of a message (body or caption), for quotes and edits."""
    if message is None:
        return ""
    message, _ = _unwrap(message)
    if message.conversation:
        return message.conversation
    if message.HasField("extendedTextMessage"):
        return message.extendedTextMessage.text
    for name in _MEDIA_FIELDS:
        if message.HasField(name):
            return getattr(getattr(message, name), "caption", "") or ""
    for name in _POLL_FIELDS:
        if message.HasField(name):
            return getattr(message, name).name
    return ""


def media_ref(kind: str, media) -> dict:
    """What `download_media` needs, as JSON-safe values (it is stored with the message)."""
    b64 = lambda data: base64.b64encode(data or b"").decode()  # noqa: E731
    return {
        "backend": "neonize",
        "kind": str(kind),
        "direct_path": media.directPath,
        "media_key": b64(media.mediaKey),
        "file_sha256": b64(media.fileSHA256),
        "file_enc_sha256": b64(media.fileEncSHA256),
        "file_length": int(media.fileLength or 0),
        "mime_type": media.mimetype,
    }


def convert_message(event) -> p.IncomingMessage | None:
    """A neonize Message event as our IncomingMessage; None for protocol noise (key shares, votes...)."""
    info = event.Info
    src = info.MessageSource
    from_me = bool(src.IsFromMe)
    # WhatsApp names a person by number or by hidden user ID (…@lid), the other in the *Alt field when it
    # tells both (by the chat's AddressingMode): the number goes in chat/sender, the LID beside it.
    sender = _phone_jid(src.Sender, src.SenderAlt)
    sender_lid = _lid_jid(src.Sender, src.SenderAlt)
    chat, chat_lid = jid_str(src.Chat), ""
    if not src.IsGroup and src.Chat.Server in (p.LID_SERVER, p.USER_SERVER):
        peer_alt = src.RecipientAlt if from_me else src.SenderAlt
        chat, chat_lid = _phone_jid(src.Chat, peer_alt), _lid_jid(src.Chat, peer_alt)
    content, view_once = _unwrap(event.Message)
    view_once = view_once or bool(event.IsViewOnce or event.IsViewOnceV2 or event.IsViewOnceV2Extension)
    msg = p.IncomingMessage(
        id=info.ID,
        chat=chat,
        sender=sender,
        sender_name=info.Pushname,
        from_me=from_me,
        timestamp=_seconds(info.Timestamp),
        view_once=view_once,
        chat_lid=chat_lid,
        sender_lid=sender_lid,
    )
    context = None

    if content.HasField("protocolMessage"):
        proto = content.protocolMessage
        kinds = type(proto)
        if proto.type == kinds.REVOKE:
            msg.kind, msg.target_id = p.MessageKind.REVOKE, proto.key.ID
            return msg
        if proto.type == kinds.MESSAGE_EDIT:
            msg.kind, msg.target_id = p.MessageKind.EDIT, proto.key.ID
            msg.text = text_of(proto.editedMessage)
            if proto.timestampMS:
                msg.timestamp = proto.timestampMS / 1000
            return msg
        return None
    if content.HasField("pollUpdateMessage"):
        # The vote is encrypted with the poll's secret; NeonizeClient.translate decrypts it (whatsmeow has it).
        msg.kind, msg.target_id = p.MessageKind.POLL_VOTE, content.pollUpdateMessage.pollCreationMessageKey.ID
        return msg
    if content.HasField("reactionMessage"):
        reaction = content.reactionMessage
        msg.kind, msg.target_id, msg.reaction = p.MessageKind.REACTION, reaction.key.ID, reaction.text
        return msg
    if content.conversation:
        msg.kind, msg.text = p.MessageKind.TEXT, content.conversation
    elif content.HasField("extendedTextMessage"):
        ext = content.extendedTextMessage
        msg.kind, msg.text, context = p.MessageKind.TEXT, ext.text, ext.contextInfo
    elif any(content.HasField(name) for name in _MEDIA_FIELDS):
        name = next(name for name in _MEDIA_FIELDS if content.HasField(name))
        media = getattr(content, name)
        msg.kind = _MEDIA_FIELDS[name]
        msg.caption = getattr(media, "caption", "") or ""
        msg.view_once = msg.view_once or bool(getattr(media, "viewOnce", False))
        msg.media = p.MediaInfo(
            mime_type=media.mimetype,
            size=int(media.fileLength or 0),
            filename=getattr(media, "fileName", "") or "",
            sha256=(media.fileSHA256 or b"").hex(),
            ref=media_ref(msg.kind, media),
        )
        context = media.contextInfo
    elif content.HasField("locationMessage") or content.HasField("liveLocationMessage"):
        loc = content.locationMessage if content.HasField("locationMessage") else content.liveLocationMessage
        msg.kind = p.MessageKind.LOCATION
        msg.latitude, msg.longitude = loc.degreesLatitude, loc.degreesLongitude
        msg.text = getattr(loc, "name", "") or getattr(loc, "address", "") or ""
        context = loc.contextInfo
    elif content.HasField("contactMessage"):
        contact = content.contactMessage
        msg.kind, msg.contact_name, msg.contact_vcard = (
            p.MessageKind.CONTACT,
            contact.displayName,
            contact.vcard,
        )
        context = contact.contextInfo
    elif content.HasField("contactsArrayMessage") and content.contactsArrayMessage.contacts:
        contact = content.contactsArrayMessage.contacts[0]
        msg.kind, msg.contact_name, msg.contact_vcard = (
            p.MessageKind.CONTACT,
            contact.displayName,
            contact.vcard,
        )
        context = content.contactsArrayMessage.contextInfo
    elif any(content.HasField(name) for name in _POLL_FIELDS):
        poll = getattr(content, next(name for name in _POLL_FIELDS if content.HasField(name)))
        msg.kind, msg.poll_question = p.MessageKind.POLL, poll.name
        msg.poll_options = [option.optionName for option in poll.options]
        context = poll.contextInfo
    else:
        present = {field.name for field, _ in content.ListFields()} - _SILENT_FIELDS
        if not present:
            return None
        msg.kind = p.MessageKind.UNKNOWN
    if context is not None:
        msg.is_forwarded = bool(context.isForwarded)
        if context.stanzaID:
            msg.reply_to_id = context.stanzaID
            msg.quoted_body = text_of(context.quotedMessage) if context.HasField("quotedMessage") else ""
    return msg


# ---------------------------------------------------------------------------------------------- results


def convert_group(info) -> p.GroupInfo:
    owner = info.OwnerPN if info.HasField("OwnerPN") and info.OwnerPN.User else info.OwnerJID
    return p.GroupInfo(
        jid=jid_str(info.JID),
        name=info.GroupName.Name,
        topic=info.GroupTopic.Topic,
        owner=jid_str(owner),
        created_at=_seconds(info.GroupCreated),
        locked=bool(info.GroupLocked.isLocked),
        announce=bool(info.GroupAnnounce.IsAnnounce),
        participants=[
            p.GroupParticipant(
                jid=_phone_jid(part.JID, part.PhoneNumber),
                is_admin=bool(part.IsAdmin or part.IsSuperAdmin),
                is_super_admin=bool(part.IsSuperAdmin),
                display_name=part.DisplayName,
            )
            for part in info.Participants
        ],
    )


def _enum_name(message, field: str) -> str:
    descriptor = message.DESCRIPTOR.fields_by_name[field].enum_type
    if not message.HasField(field):
        return ""
    return descriptor.values_by_number[getattr(message, field)].name.lower()


def convert_privacy(settings_pb) -> p.PrivacySettings:
    def value(field: str) -> str:
        name = _enum_name(settings_pb, field)
        return "" if name == "undefined" else name

    return p.PrivacySettings(
        group_add=value("GroupAdd"),
        last_seen=value("LastSeen"),
        status=value("Status"),
        profile=value("Profile"),
        read_receipts=value("ReadReceipts"),
        online=value("Online"),
        call_add=value("CallAdd"),
    )


def convert_newsletter_post(post) -> p.NewsletterPost:
    """A NewsletterMessage (whatsmeow gives no timestamp with it: 0)."""
    message, _ = _unwrap(post.Message)
    kind = p.MessageKind.TEXT
    for name, media_kind in _MEDIA_FIELDS.items():
        if message.HasField(name):
            kind = media_kind
            break
    return p.NewsletterPost(
        server_id=int(post.MessageServerID),
        kind=str(kind),
        text=text_of(post.Message),
        views=int(post.ViewsCount or 0),
        reactions={r.type: int(r.count) for r in post.ReactionCounts},
    )


def convert_newsletter(meta) -> p.Newsletter:
    thread = meta.ThreadMeta
    return p.Newsletter(
        jid=jid_str(meta.ID),
        name=thread.Name.Text,
        description=thread.Description.Text,
        subscribers=int(thread.SubscriberCount or 0),
        role=_enum_name(meta.ViewerMeta, "Role") if meta.HasField("ViewerMeta") else "",
    )
