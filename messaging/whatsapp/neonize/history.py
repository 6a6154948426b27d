"""neonize's HistorySyncEv (whatsmeow's waHistorySync.HistorySync) as our HistorySyncEvent, and how far back to ask.

After a link the phone sends its chats in chunks: conversations with their messages as WebMessageInfo, and
push names. Each message becomes an IncomingMessage through the same conversion as a live one (a MessageEv
built around it), so kinds, captions, media metadata and replies read alike.

How far back: whatsmeow asks the phone for history with the device props it registers at pairing
(DeviceProps.historySyncConfig, requireFullSync), which neonize 0.5.2 passes to its Go core as
`NewAClient(props=...)`. `device_props` fills them from the organization's choice: a full sync limited to
that many days, or none (only the phone's recent bootstrap, which the import then cuts). The phone treats
these as wishes (it may send more, never more than it holds): the import applies the cut itself. There is no
call in neonize 0.5.2 to ask for more history later (whatsmeow's BuildHistorySyncRequest is not exported).
"""

from __future__ import annotations

import logging

from messaging.whatsapp import protocol as p
from messaging.whatsapp.neonize.incoming import convert_message
from messaging.whatsapp.neonize.names import _seconds, neonize_lib, to_jid

logger = logging.getLogger(__name__)

# The servers of chats worth importing (not status@broadcast, not newsletters: those are not conversations).
_CHAT_SERVERS = (p.USER_SERVER, p.GROUP_SERVER, p.LID_SERVER)


def device_props(days: int | None):
    """The DeviceProps to register with: the organization's `days` (None: everything) as whatsmeow's history
    sync wishes."""
    lib = neonize_lib()
    props = lib.DeviceProps(os="waportal", platformType=lib.DeviceProps.CHROME)
    if days is None:
        props.requireFullSync = True
    elif days > 0:
        props.requireFullSync = True
        props.historySyncConfig.fullSyncDaysLimit = days
        props.historySyncConfig.recentSyncDaysLimit = days
    else:
        props.requireFullSync = False
        props.historySyncConfig.recentSyncDaysLimit = 1
    return props


def history_days(device_id: int) -> int | None:
    """The organization's choice of how far back for the device (sync; the runtime's DB threads)."""
    from messaging.models import Device

    device = Device.objects.select_related("organization").filter(pk=device_id).first()
    return device.organization.history_days if device is not None else 30


def _chat_jid(conversation) -> str:
    """The conversation's chat, by phone number when WhatsApp names it by a hidden id (@lid) and says both."""
    jid = conversation.ID or conversation.newJID
    user, _, server = jid.partition("@")
    if server == p.LID_SERVER and conversation.pnJID:
        jid = conversation.pnJID
        user, _, server = jid.partition("@")
    if server not in _CHAT_SERVERS or not user:
        return ""
    return f"{user.split(':', 1)[0]}@{server}"


def _chat_lid(conversation, chat: str) -> str:
    """The hidden id (@lid) of a 1:1 conversation with the number `chat`, when WhatsApp said both ("" if not)."""
    if not chat.endswith("@" + p.USER_SERVER):
        return ""
    for jid in (conversation.ID or conversation.newJID, conversation.lidJID):
        user, _, server = (jid or "").partition("@")
        if server == p.LID_SERVER and user:
            return f"{user.split(':', 1)[0]}@{server}"
    return ""


def convert_web_message(info, *, chat: str, own_jid: str) -> p.IncomingMessage | None:
    """One WebMessageInfo of a conversation as an IncomingMessage (None for a system stub or protocol noise)."""
    np = neonize_lib().np
    if not info.HasField("message") or not info.key.ID:
        return None
    from_me = bool(info.key.fromMe)
    group = chat.endswith("@" + p.GROUP_SERVER)
    if from_me:
        sender = own_jid or chat
    elif group:
        sender = info.key.participant or info.participant
    else:
        sender = chat
    try:
        source = np.MessageSource(
            Chat=to_jid(chat), Sender=to_jid(sender or chat), IsFromMe=from_me, IsGroup=group
        )
    except p.WhatsAppError:
        return None
    event = np.Message(
        Info=np.MessageInfo(
            MessageSource=source,
            ID=info.key.ID,
            Pushname=info.pushName,
            Timestamp=int(info.messageTimestamp or 0),
        ),
        Message=info.message,
    )
    try:
        message = convert_message(event)
    except Exception:  # one odd message does not lose the chunk
        logger.exception("history message %s of %s not converted", info.key.ID, chat)
        return None
    if message is not None:
        message.timestamp = _seconds(info.messageTimestamp)
    return message


def convert_history(data, *, own_jid: str) -> p.HistorySyncEvent:
    """A waHistorySync.HistorySync (the `Data` of neonize's HistorySyncEv) as our event.

    `final`: the phone's progress reached 100 (whatsmeow marks no last chunk otherwise)."""
    conversations = []
    for conversation in data.conversations:
        chat = _chat_jid(conversation)
        if not chat:
            continue
        messages = [
            message
            for item in conversation.messages
            if (message := convert_web_message(item.message, chat=chat, own_jid=own_jid)) is not None
        ]
        messages.sort(key=lambda m: m.timestamp)
        if lid := _chat_lid(conversation, chat):  # the import learns the pair, as from a live message
            for message in messages:
                message.chat_lid = lid
                if not message.from_me:
                    message.sender_lid = lid
        conversations.append(
            p.HistoryConversation(
                jid=chat,
                name=conversation.name or conversation.displayName,
                unread_count=int(conversation.unreadCount or 0),
                last_message_at=_seconds(conversation.conversationTimestamp or conversation.lastMsgTimestamp),
                messages=messages,
            )
        )
    push_names = {}
    for entry in data.pushnames:
        jid = entry.ID if "@" in entry.ID else f"{entry.ID}@{p.USER_SERVER}"
        if entry.ID and entry.pushname and jid.endswith("@" + p.USER_SERVER):
            push_names[jid] = entry.pushname
    kind = type(data).HistorySyncType.Name(data.syncType).lower()
    try:
        sync_type = p.HistorySyncType(kind)
    except ValueError:
        sync_type = p.HistorySyncType.RECENT
    progress = int(data.progress or 0)
    return p.HistorySyncEvent(
        sync_type=sync_type,
        chunk_order=int(data.chunkOrder or 0),
        progress=progress,
        final=progress >= 100,
        conversations=conversations,
        push_names=push_names,
    )
