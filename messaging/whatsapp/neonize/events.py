"""neonize's events as our domain events: messages, receipts, presence, group changes, connection state."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from messaging.whatsapp import protocol as p
from messaging.whatsapp.neonize import secrets
from messaging.whatsapp.neonize.history import convert_history
from messaging.whatsapp.neonize.incoming import (
    _enum_name,
    _unwrap,
    convert_message,
)
from messaging.whatsapp.neonize.names import (
    _lid_jid,
    _phone_jid,
    _seconds,
    jid_str,
    neonize_lib,
)

logger = logging.getLogger(__name__)


def _data_events() -> tuple[type, ...]:
    """Events that are news whichever client of the device delivered them (unlike connection-state events)."""
    ev = neonize_lib().ev
    return (
        *(ev.MessageEv, ev.ReceiptEv, ev.PresenceEv, ev.ChatPresenceEv, ev.GroupInfoEv, ev.JoinedGroupEv),
        ev.HistorySyncEv,
        *label_events(),
    )


def _node_attr(node, name: str) -> str:
    """An attribute of a whatsmeow XML node (as neonize's protobuf Node carries it), as text; "" when absent."""
    for attr in node.Attrs:
        if attr.name == name:
            kind = attr.WhichOneof("Value")
            if kind == "jid":
                return jid_str(attr.jid)
            return str(getattr(attr, kind)) if kind else ""
    return ""


# Labels: whatsmeow reports them from WhatsApp's app-state sync as events.LabelEdit (a label made, changed or
# deleted) and events.LabelAssociationChat (a label put on a chat or taken off), each carrying a waSyncAction
# protobuf. neonize 0.5.2 forwards neither to Python: its event table (neonize.aioze.events.EVENT_TO_INT) has
# no label event, so on this backend label.edit / label.association reach us only once a neonize release
# forwards them under these names (whatsmeow's, as neonize names its other events); they are subscribed to
# when present. The actions they carry are protobufs neonize 0.5.2 has, and are translated below.
LABEL_EDIT_EVENT = "LabelEditEv"
LABEL_ASSOCIATION_EVENT = "LabelAssociationChatEv"


def label_events() -> tuple[type, ...]:
    """neonize's label event classes, those it has (none in 0.5.2)."""
    ev = neonize_lib().ev
    found = (getattr(ev, LABEL_EDIT_EVENT, None), getattr(ev, LABEL_ASSOCIATION_EVENT, None))
    return tuple(t for t in found if t is not None)


def label_edit(*, label_id: str, action, timestamp: float = 0.0) -> p.LabelEditEvent:
    """whatsmeow's LabelEdit (its label ID and a waSyncAction.LabelEditAction) as our event."""
    color = action.color if 0 <= action.color < len(p.LABEL_COLORS) else 0
    return p.LabelEditEvent(
        label_id=str(label_id), name=action.name, color=color, deleted=action.deleted, timestamp=timestamp
    )


def label_association(*, chat: str, label_id: str, action, timestamp: float = 0.0) -> p.LabelAssociationEvent:
    """whatsmeow's LabelAssociationChat (a chat, a label ID, a waSyncAction.LabelAssociationAction) as ours."""
    return p.LabelAssociationEvent(
        chat=chat, label_id=str(label_id), labeled=action.labeled, timestamp=timestamp
    )


class Events:
    """NeonizeClient's event handling (see client.py for its state)."""

    def _label_event(self, event) -> p.Event:
        """A neonize label event (fields as whatsmeow's: LabelID, Action, JID for an association, Timestamp)."""
        stamp = _seconds(getattr(event, "Timestamp", 0))
        if type(event) is getattr(neonize_lib().ev, LABEL_EDIT_EVENT, None):
            return label_edit(label_id=event.LabelID, action=event.Action, timestamp=stamp)
        return label_association(
            chat=jid_str(event.JID), label_id=event.LabelID, action=event.Action, timestamp=stamp
        )

    async def on_event(self, neo, event) -> None:
        """neonize's event callback (on our loop): translate and emit, one event at a time, in order."""
        if neo is not self.neo and not isinstance(event, _data_events()):
            return  # the state of a replaced client's connection is not this device's any more
        async with self._event_order:
            try:
                converted = await self.translate(event)
            except Exception:
                logger.exception(
                    "could not translate neonize %s for device %s", type(event).__name__, self.device_id
                )
                return
            for item in converted:
                await self._emit_event(item)

    async def translate(self, event) -> list[p.Event]:
        """Our domain events for one neonize protobuf event (state changes of this client included)."""
        ev = neonize_lib().ev
        if type(event) in label_events():
            return [self._label_event(event)]
        if isinstance(event, ev.MessageEv):
            content, _ = _unwrap(event.Message)
            if content.HasField("encReactionMessage"):
                return await self._encrypted_reaction(event, content.encReactionMessage)
            message = convert_message(event)
            if message is None:
                return []
            await self._numbers_from_store(message, event.Info.MessageSource)
            if message.kind == p.MessageKind.POLL_VOTE:
                try:
                    vote = await self.neo.decrypt_poll_vote(event)
                except Exception as exc:
                    # whatsmeow does not know the poll's secret (a poll from before this device was linked).
                    logger.warning(
                        "poll vote %s of device %s not decrypted: %s", message.id, self.device_id, exc
                    )
                    return []
                message.poll_selected = [bytes(option).hex() for option in vote.selectedOptions]
            # A reply to, reaction to, edit or revoke of one of our messages names it by WhatsApp's ID.
            message.id, message.target_id, message.reply_to_id = await self.ids.ours(
                message.id, message.target_id, message.reply_to_id
            )
            return [p.MessageEvent(message=message)]
        if isinstance(event, ev.ReceiptEv):
            return self._pairs_told(event.MessageSource) + await self._receipt(event)
        if isinstance(event, ev.HistorySyncEv):
            return [await self._history(event)]
        if isinstance(event, ev.PresenceEv):
            # Go's zero time (no last-seen: hidden, or never) arrives as -62135596800 (year 1): unknown.
            last_seen = _seconds(event.LastSeen) if event.LastSeen > 0 else None
            return [
                p.PresenceEvent(jid=jid_str(event.From), available=not event.Unavailable, last_seen=last_seen)
            ]
        if isinstance(event, ev.ChatPresenceEv):
            src = event.MessageSource
            state = (
                p.ChatPresenceState.COMPOSING
                if event.State == type(event).COMPOSING
                else p.ChatPresenceState.PAUSED
            )
            media = "audio" if event.Media == type(event).AUDIO else ""
            return [
                *self._pairs_told(src),
                p.ChatPresenceEvent(
                    chat=jid_str(src.Chat) if src.IsGroup else _phone_jid(src.Chat, src.SenderAlt),
                    sender=_phone_jid(src.Sender, src.SenderAlt),
                    state=state,
                    media=media,
                ),
            ]
        if isinstance(event, ev.CallOfferEv | ev.CallOfferNoticeEv):
            return [await self._call_offer(event)]
        if isinstance(event, ev.GroupInfoEv):
            return await self._group_changes(event)
        if isinstance(event, ev.JoinedGroupEv):
            info = event.GroupInfo
            return [
                p.GroupChangedEvent(
                    group=jid_str(info.JID),
                    change=p.GroupChange.PARTICIPANTS,
                    actor=_phone_jid(event.Sender, event.SenderPN),
                    action="join",
                    participants=[self.jid] if self.jid else [],
                    name=info.GroupName.Name or None,
                    timestamp=time.time(),
                )
            ]
        return await self._connection_event(event)

    async def _history(self, event) -> p.HistorySyncEvent:
        """A chunk of the phone's history; our messages among it are named by our IDs, as live ones are."""
        history = convert_history(event.Data, own_jid=self.jid)
        messages = [m for c in history.conversations for m in c.messages]
        if messages:
            ids = await self.ids.ours(*(m.id for m in messages), *(m.reply_to_id for m in messages))
            for message, ours, reply in zip(messages, ids, ids[len(messages) :], strict=False):
                message.id, message.reply_to_id = ours, reply
        return history

    async def _call_offer(self, event) -> p.CallOfferEvent:
        """A ringing call: CallOffer (one caller) or CallOfferNotice (whatsmeow's, mostly for group calls).

        Whether it is a video or group call is in the offer's XML node (as WhatsApp Web reads it: a <video>
        child, a `type="group"` or `group-jid` attribute); a notice says it in its `media` and `type`."""
        ev = neonize_lib().ev
        meta = event.basicCallMeta
        creator = meta.callCreator if meta.HasField("callCreator") else getattr(meta, "from")
        alt = meta.callCreatorAlt if meta.HasField("callCreatorAlt") else None
        caller = _phone_jid(creator, alt)
        if caller.endswith("@" + p.LID_SERVER):  # no phone number in the offer: whatsmeow's map may know it
            caller = await self._phone_number(creator)
        raw = jid_str(creator)
        if isinstance(event, ev.CallOfferNoticeEv):
            group = _node_attr(event.data, "group-jid")
            is_video, is_group = event.media == "video", event.type == "group" or bool(group)
        else:
            offer = next((n for n in event.data.Nodes if n.Tag == "offer"), event.data)
            is_video = any(n.Tag == "video" for n in offer.Nodes)
            group = _node_attr(offer, "group-jid")
            is_group = bool(group) or _node_attr(offer, "type") == "group"
        # whatsmeow rejects on the JID the offer named the caller by: remembered for a later reject_call.
        self._call_creators[meta.callID] = creator
        while len(self._call_creators) > 100:
            self._call_creators.pop(next(iter(self._call_creators)))
        return p.CallOfferEvent(
            call_id=meta.callID,
            caller=caller,
            caller_lid=raw if creator.Server == p.LID_SERVER else "",
            is_video=is_video,
            is_group=is_group,
            group=group,
            timestamp=_seconds(meta.timestamp) or time.time(),
        )

    async def _encrypted_reaction(self, event, encrypted) -> list[p.Event]:
        """A reaction in a community announcement group, decrypted (see secrets.py), as a plain reaction event."""
        key, source = encrypted.targetMessageKey, event.Info.MessageSource
        reactor = jid_str(source.Sender)
        # Who wrote the reacted message, as whatsmeow's getOrigSenderFromKey finds it.
        if key.fromMe:
            original = reactor
        elif source.Chat.Server in (p.USER_SERVER, p.LID_SERVER):
            original = key.remoteJID
        else:
            original = key.participant
        user, _, server = original.partition("@")
        original = f"{user.split(':', 1)[0]}@{server}"
        try:
            found = await asyncio.to_thread(
                self.backend.message_secret,
                self.device_id,
                our_user=p.jid_user(self.jid),
                chat=jid_str(source.Chat),
                sender=original,
                message_id=key.ID,
            )
            if found is None:
                raise LookupError("whatsmeow keeps no secret of the reacted message")
            secret, stored_sender = found
            aes_key = secrets.reaction_key(
                secret, message_id=key.ID, original_sender=stored_sender, reactor=reactor
            )
            plain = secrets.decrypt(aes_key, encrypted.encIV, encrypted.encPayload)
            reaction = neonize_lib().e2e.ReactionMessage.FromString(plain)
        except Exception as exc:
            logger.warning(
                "encrypted reaction %s of device %s not decrypted: %s", event.Info.ID, self.device_id, exc
            )
            return []
        reaction.key.CopyFrom(key)
        plain_event = type(event)()
        plain_event.CopyFrom(event)
        plain_event.Message.Clear()
        plain_event.Message.reactionMessage.CopyFrom(reaction)
        return await self.translate(plain_event)

    async def _connection_event(self, event) -> list[p.Event]:
        ev = neonize_lib().ev
        np = neonize_lib().np
        if isinstance(event, ev.ConnectedEv):
            self._connected = True
            self._attempt = 0
            self._cancel_watchdog()
            push_name = ""
            with contextlib.suppress(Exception):
                me = await self.neo.get_me()
                self.jid = jid_str(me.JID) or self.jid
                push_name = me.PushName
            return [p.ConnectedEvent(jid=self.jid, push_name=push_name)]
        if isinstance(event, ev.PairStatusEv):
            if event.Status == np.PairStatus.SUCCESS:
                self._cancel_watchdog()
                self._fresh_session = (
                    False  # whatsmeow's QR loop ends with the pairing; the connection goes on
                )
                self.jid = jid_str(event.ID)
                return [p.PairedEvent(jid=self.jid, push_name=event.BusinessName, platform=event.Platform)]
            return [p.DisconnectedEvent(reason=f"pairing failed: {event.Error}", will_reconnect=True)]
        if isinstance(event, ev.DisconnectedEv):
            self._connected = False
            if self._stopping or self._final:
                return []
            # whatsmeow reconnects by itself after a dropped socket.
            return [p.DisconnectedEvent(reason="connection lost", will_reconnect=True)]
        if isinstance(event, ev.LoggedOutEv):
            reason = _enum_name(event, "Reason") or "logged out from the phone"
            self._connected = False
            self._final = True
            self._spawn(self._forget_session())
            return [p.LoggedOutEvent(reason=reason)]
        if isinstance(event, ev.ConnectFailureEv):
            reason = " ".join(filter(None, [_enum_name(event, "Reason"), event.Message])) or "connect failure"
            return [p.DisconnectedEvent(reason=reason, will_reconnect=True)]
        if isinstance(event, ev.StreamErrorEv):
            return [p.DisconnectedEvent(reason=f"stream error {event.Code}".strip(), will_reconnect=True)]
        final_reason = None
        if isinstance(event, ev.StreamReplacedEv):
            final_reason = "another client connected with this session"
        elif isinstance(event, ev.TemporaryBanEv):
            final_reason = (
                f"temporarily banned by WhatsApp ({_enum_name(event, 'Code')}), for {int(event.Expire)} s"
            )
        elif isinstance(event, ev.ClientOutdatedEv):
            final_reason = "WhatsApp says this client version is outdated (update neonize)"
        if final_reason is not None:
            # whatsmeow does not reconnect after these; neither do we (a reconnect from the dashboard may).
            self._connected = False
            self._final = True
            self._spawn(self.stop())
            return [p.DisconnectedEvent(reason=final_reason, will_reconnect=False)]
        return []

    async def _forget_session(self) -> None:
        await self.stop()
        self.backend.remove_session(self.device_id)
        self.jid = ""

    async def _receipt(self, event) -> list[p.Event]:
        kinds = type(event)
        mapping = {
            kinds.DELIVERED: p.ReceiptType.DELIVERED,
            kinds.READ: p.ReceiptType.READ,
            kinds.PLAYED: p.ReceiptType.PLAYED,
        }
        # SENDER/RETRY/READ_SELF/... are about our other devices or delivery internals, not the recipient.
        kind = mapping.get(event.Type) if event.HasField("Type") else p.ReceiptType.DELIVERED
        if kind is None or not event.MessageIDs:
            return []
        src = event.MessageSource
        return [
            p.ReceiptEvent(
                chat=jid_str(src.Chat) if src.IsGroup else _phone_jid(src.Chat, src.SenderAlt),
                sender=_phone_jid(src.Sender, src.SenderAlt),
                message_ids=await self.ids.ours(*event.MessageIDs),
                type=kind,
                timestamp=_seconds(event.Timestamp),
            )
        ]

    async def _numbers_from_store(self, message: p.IncomingMessage, src) -> None:
        """A message that names someone by LID only: their number from whatsmeow's store when it knows it
        (`get_pn_from_lid`, neonize 0.5.2), so the event carries both and the device's map learns the pair."""
        if p.is_lid(message.sender):
            message.sender = await self._phone_number(src.Sender)
        if p.is_lid(message.chat) and not src.IsGroup:
            message.chat = await self._phone_number(src.Chat)

    def _pairs_told(self, src) -> list[p.Event]:
        """LID ↔ number pairs an event's source carries (sender and its *Alt), each once per client: the device's
        map learns them though the event itself (a receipt, typing) stores no address."""
        lid, phone = _lid_jid(src.Sender, src.SenderAlt), _phone_jid(src.Sender, src.SenderAlt)
        if not lid or not phone.endswith("@" + p.USER_SERVER):
            return []
        if self._lids_told.get(lid) == phone:
            return []
        self._lids_told[lid] = phone
        return [p.LidMappingEvent(lid=lid, phone=phone)]

    async def _phone_number(self, jid_pb) -> str:
        """A participant as group_info() names them: a hidden user (@lid) by phone number when whatsmeow knows it."""
        if jid_pb.Server != p.LID_SERVER or self.neo is None:
            return jid_str(jid_pb)
        try:
            phone = await self.neo.get_pn_from_lid(jid_pb)
        except Exception:
            phone = None
        return jid_str(phone) if phone is not None and phone.User else jid_str(jid_pb)

    async def _group_changes(self, event) -> list[p.Event]:
        # In an @lid group whatsmeow names people by LID; group_info() gives phone numbers: map them alike.
        names = {}
        for who in [event.Sender, *event.Join, *event.Leave, *event.Promote, *event.Demote]:
            key = jid_str(who)
            if key and key not in names:
                names[key] = await self._phone_number(who)
        group, actor, ts = jid_str(event.JID), names.get(jid_str(event.Sender), ""), _seconds(event.Timestamp)
        out: list[p.Event] = []

        def participants(action: str, jids) -> None:
            if jids:
                out.append(
                    p.GroupChangedEvent(
                        group=group,
                        change=p.GroupChange.PARTICIPANTS,
                        actor=actor,
                        action=action,
                        participants=[names.get(jid_str(j), jid_str(j)) for j in jids],
                        timestamp=ts,
                    )
                )

        participants("join" if event.JoinReason else "add", event.Join)
        leaving = list(event.Leave)
        self_left = [j for j in leaving if names.get(jid_str(j)) == actor]
        participants("leave", self_left)
        participants("remove", [j for j in leaving if names.get(jid_str(j)) != actor])
        participants("promote", event.Promote)
        participants("demote", event.Demote)
        if event.HasField("Name"):
            out.append(
                p.GroupChangedEvent(
                    group=group, change=p.GroupChange.SUBJECT, actor=actor, name=event.Name.Name, timestamp=ts
                )
            )
        settings_change = {}
        if event.HasField("Topic"):
            settings_change["topic"] = "" if event.Topic.TopicDeleted else event.Topic.Topic
        if event.HasField("Locked"):
            settings_change["locked"] = bool(event.Locked.isLocked)
        if event.HasField("Announce"):
            settings_change["announce"] = bool(event.Announce.IsAnnounce)
        if settings_change:
            out.append(
                p.GroupChangedEvent(
                    group=group, change=p.GroupChange.SETTINGS, actor=actor, timestamp=ts, **settings_change
                )
            )
        return out
