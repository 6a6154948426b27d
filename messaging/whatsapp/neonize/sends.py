"""Sending messages and acting on them (revoke, edit, react, read, star) through neonize."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import time
from collections.abc import Callable

from django.utils.translation import gettext_noop as _noop

from messaging.whatsapp import protocol as p
from messaging.whatsapp.neonize import app_state, media
from messaging.whatsapp.neonize.app_state import delete_for_me_patch, star_patch
from messaging.whatsapp.neonize.incoming import (
    _POLL_FIELDS,
)
from messaging.whatsapp.neonize.names import (
    _seconds,
    neonize_lib,
    to_jid,
    translate_error,
)


class Sending:
    """NeonizeClient's sends (see client.py for its state)."""

    def _client(self):
        if self.neo is None or not self._connected:
            raise p.NotConnected(_noop("the device is not connected to WhatsApp"))
        return self.neo

    async def _call(self, method: Callable, *args, **kwargs):
        try:
            return await method(*args, **kwargs)
        except p.WhatsAppError:
            raise
        except Exception as exc:
            raise translate_error(exc) from exc

    # -- sending

    async def send(self, *, message: p.OutgoingMessage) -> p.SendResult:
        # neonize cannot send with our ID (see the package docstring). The shared map (`sent_ids`) records the
        # attempt first: a retry of a message that went out returns the first result, and one whose earlier
        # attempt was cut off (this or another worker died, or it timed out) raises SendOutcomeUnknown.
        neo = self._client()
        to = to_jid(message.to)
        wa_message = await self._call(self._build, neo, message)
        earlier = await self.ids.begin(message.id)
        if earlier is not None:
            return earlier
        try:
            response = await self._call(neo.send_message, to, wa_message)
        except p.UpstreamTimeout:
            raise  # it may have reached WhatsApp: the attempt stays recorded, a retry is "unknown"
        except p.WhatsAppError:
            await self.ids.abandon(message.id)  # refused before it left: a retry may send it
            raise
        timestamp = _seconds(response.Timestamp) or time.time()
        await self.ids.finish(message.id, response.ID or message.id, timestamp)
        return p.SendResult(id=message.id, timestamp=timestamp)

    def _quoted(self, message: p.OutgoingMessage, quoted_id: str):
        """A neonize message event standing for the quoted message (what neonize's builders take)."""
        q = message.reply_to
        if q is None:
            return None
        lib = neonize_lib()
        source = lib.np.MessageSource(
            Chat=to_jid(message.to),
            Sender=to_jid(q.sender),
            IsFromMe=q.from_me,
            IsGroup=p.is_group(message.to),
        )
        return lib.np.Message(
            Info=lib.np.MessageInfo(ID=quoted_id, MessageSource=source),
            Message=lib.e2e.Message(conversation=q.text),
        )

    def _context(self, message: p.OutgoingMessage, quoted_id: str = ""):
        e2e = neonize_lib().e2e
        context = e2e.ContextInfo()
        if message.reply_to is not None:
            q = message.reply_to
            context.stanzaID = quoted_id
            context.participant = q.sender
            context.quotedMessage.CopyFrom(e2e.Message(conversation=q.text))
        if message.is_forwarded:
            context.isForwarded = True
            context.forwardingScore = 1
        if message.mentions:
            context.mentionedJID.extend(message.mentions)
        if message.expiration:
            context.expiration = message.expiration
        return context

    async def _everyone(self, message: p.OutgoingMessage) -> p.OutgoingMessage:
        """EVERYONE in the mentions becomes each member of the group (it means nothing in a one-to-one chat)."""
        if p.EVERYONE not in message.mentions:
            return message
        named = [j for j in message.mentions if j != p.EVERYONE]
        if p.is_group(message.to):
            info = await self.group_info(jid=message.to)
            named += [m.jid for m in info.participants if m.jid not in named]
        return dataclasses.replace(message, mentions=named)

    async def _build(self, neo, message: p.OutgoingMessage):
        lib = neonize_lib()
        e2e, enum = lib.e2e, lib.enum
        kind = p.MessageKind(message.kind)
        # A quote of one of our messages names it by WhatsApp's ID.
        quoted_id = await self.ids.theirs(message.reply_to.id) if message.reply_to is not None else ""
        quoted = self._quoted(message, quoted_id)
        if kind in p.MEDIA_KINDS and not message.media:
            raise p.InvalidRequest(_noop("a %(kind)s message needs the media bytes") % {"kind": kind})
        message = await self._everyone(message)
        if kind == p.MessageKind.TEXT:
            if (
                message.reply_to is None
                and not message.is_forwarded
                and not message.mentions
                and not message.expiration
            ):
                return e2e.Message(conversation=message.text)
            return e2e.Message(
                extendedTextMessage=e2e.ExtendedTextMessage(
                    text=message.text, contextInfo=self._context(message, quoted_id)
                )
            )
        if kind == p.MessageKind.LINK:
            body = f"{message.caption}\n{message.text}" if message.caption else message.text
            # No preview fetch: neonize would fetch the page from this server (the API validates URLs, not neonize).
            ext = e2e.ExtendedTextMessage(
                text=body, matchedText=message.text, contextInfo=self._context(message, quoted_id)
            )
            return e2e.Message(extendedTextMessage=ext)
        # neonize's image/document builders turn "@" and 5 to 16 digits in a caption into a mention (and look up
        # "@...@g.us" as groups): the caption is set after building, so it goes out as typed.
        if kind == p.MessageKind.IMAGE:
            built = await neo.build_image_message(message.media, quoted=quoted, viewonce=message.view_once)
            built.imageMessage.caption = message.caption
        elif kind == p.MessageKind.DOCUMENT:
            built = await neo.build_document_message(
                message.media,
                title=message.filename or None,
                filename=message.filename or None,
                mimetype=message.mime_type or None,
                quoted=quoted,
            )
            built.documentMessage.caption = message.caption
        elif kind == p.MessageKind.STICKER:
            # A WebP goes as it is; other images are converted to WebP by neonize.
            built = await neo.build_sticker_message(
                message.media, quoted=quoted, passthrough=message.mime_type == "image/webp"
            )
        elif kind in (p.MessageKind.AUDIO, p.MessageKind.VIDEO):
            # neonize's build_audio/video_message run ffmpeg for duration and thumbnail; we upload and describe
            # the media ourselves so sending does not depend on ffmpeg being installed.
            media_type = (
                enum.MediaType.MediaAudio if kind == p.MessageKind.AUDIO else enum.MediaType.MediaVideo
            )
            upload = await neo.upload(message.media, media_type)
            fields = dict(
                URL=upload.url,
                directPath=upload.DirectPath,
                mediaKey=upload.MediaKey,
                fileEncSHA256=upload.FileEncSHA256,
                fileSHA256=upload.FileSHA256,
                fileLength=upload.FileLength,
                contextInfo=self._context(message, quoted_id),
            )
            # Without its length a voice note shows 0:00, and a video no length, size or preview.
            if kind == p.MessageKind.AUDIO:
                mime = message.mime_type or "audio/ogg; codecs=opus"
                seconds = await asyncio.to_thread(media.audio_seconds, message.media)
                ptt = ("ogg" in mime) if message.ptt is None else message.ptt
                audio = e2e.AudioMessage(mimetype=mime, PTT=ptt, seconds=seconds, **fields)
                return e2e.Message(audioMessage=audio)
            facts = await asyncio.to_thread(media.video_facts, message.media)
            video = e2e.VideoMessage(
                mimetype=message.mime_type or "video/mp4",
                caption=message.caption,
                viewOnce=message.view_once,
                gifPlayback=message.gif_playback,
                seconds=facts.seconds,
                width=facts.width,
                height=facts.height,
                JPEGThumbnail=facts.thumbnail or None,
                **fields,
            )
            return e2e.Message(videoMessage=video)
        elif kind == p.MessageKind.CONTACT:
            try:
                vcard = lib.gen_vcard(message.contact_name, message.contact_phone)
            except Exception as exc:
                raise p.InvalidRequest(
                    _noop("contact_phone: %(contact_phone)s is not a phone number")
                    % {"contact_phone": repr(message.contact_phone)}
                ) from exc
            contact = e2e.ContactMessage(
                displayName=message.contact_name, vcard=vcard, contextInfo=self._context(message, quoted_id)
            )
            return e2e.Message(contactMessage=contact)
        elif kind == p.MessageKind.LOCATION:
            if message.latitude is None or message.longitude is None:
                raise p.InvalidRequest(_noop("a location needs latitude and longitude"))
            location = e2e.LocationMessage(
                degreesLatitude=message.latitude,
                degreesLongitude=message.longitude,
                name=message.text or None,
                contextInfo=self._context(message, quoted_id),
            )
            return e2e.Message(locationMessage=location)
        elif kind == p.MessageKind.POLL:
            vote = enum.VoteType.SINGLE if message.poll_max_answer == 1 else enum.VoteType.MULTIPLE
            built = await neo.build_poll_vote_creation(
                message.poll_question, list(message.poll_options), vote, quoted=quoted
            )
            if message.poll_max_answer > 1:
                for name in _POLL_FIELDS:
                    if built.HasField(name):
                        getattr(built, name).selectableOptionsCount = message.poll_max_answer
        else:
            raise p.NotSupported(_noop("sending %(kind)s messages is not possible") % {"kind": kind})
        if message.is_forwarded:
            for field, value in built.ListFields():
                if field.message_type is not None and "contextInfo" in value.DESCRIPTOR.fields_by_name:
                    value.contextInfo.isForwarded = True
                    value.contextInfo.forwardingScore = 1
        return built

    async def send_presence(self, *, presence: p.Presence) -> None:
        enum = neonize_lib().enum
        value = (
            enum.Presence.AVAILABLE
            if p.Presence(presence) == p.Presence.AVAILABLE
            else enum.Presence.UNAVAILABLE
        )
        await self._call(self._client().send_presence, value)

    async def send_chat_presence(self, *, chat: str, state: p.ChatPresenceState, media: str = "") -> None:
        enum = neonize_lib().enum
        composing = p.ChatPresenceState(state) == p.ChatPresenceState.COMPOSING
        value = (
            enum.ChatPresence.CHAT_PRESENCE_COMPOSING if composing else enum.ChatPresence.CHAT_PRESENCE_PAUSED
        )
        kind = (
            enum.ChatPresenceMedia.CHAT_PRESENCE_MEDIA_AUDIO
            if media == "audio"
            else enum.ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT
        )
        await self._call(self._client().send_chat_presence, to_jid(chat), value, kind)

    # -- acting on messages

    async def revoke(self, *, chat: str, message_id: str, sender: str) -> p.SendResult:
        neo = self._client()
        revoke = await self._call(
            neo.build_revoke, to_jid(chat), to_jid(sender), await self.ids.theirs(message_id)
        )
        response = await self._call(neo.send_message, to_jid(chat), revoke)
        return p.SendResult(id=message_id, timestamp=_seconds(response.Timestamp) or time.time())

    async def edit(self, *, chat: str, message_id: str, text: str) -> p.SendResult:
        neo = self._client()
        lib = neonize_lib()
        edit = lib.build_edit(
            to_jid(chat), await self.ids.theirs(message_id), lib.e2e.Message(conversation=text)
        )
        response = await self._call(neo.send_message, to_jid(chat), edit)
        return p.SendResult(id=message_id, timestamp=_seconds(response.Timestamp) or time.time())

    async def react(self, *, chat: str, message_id: str, sender: str, emoji: str) -> p.SendResult:
        neo = self._client()
        reaction = await self._call(
            neo.build_reaction, to_jid(chat), to_jid(sender), await self.ids.theirs(message_id), emoji
        )
        response = await self._call(neo.send_message, to_jid(chat), reaction)
        return p.SendResult(id=message_id, timestamp=_seconds(response.Timestamp) or time.time())

    async def mark_read(self, *, chat: str, message_ids: list[str], sender: str) -> None:
        if not message_ids:
            return
        enum = neonize_lib().enum
        await self._call(
            self._client().mark_read,
            *message_ids,
            chat=to_jid(chat),
            sender=to_jid(sender),
            receipt=enum.ReceiptType.READ,
        )

    async def star(self, *, chat: str, message_id: str, sender: str, from_me: bool, starred: bool) -> None:
        patch = star_patch(chat=chat, message_id=message_id, sender=sender, from_me=from_me, starred=starred)
        await self._send_patch(patch, _noop("starring messages"))

    async def delete_for_me(self, *, chat: str, message_id: str, sender: str, from_me: bool) -> None:
        patch = delete_for_me_patch(chat=chat, message_id=message_id, sender=sender, from_me=from_me)
        await self._send_patch(patch, _noop("deleting a message for me"))

    async def _send_patch(self, patch, what: str) -> None:
        if not app_state.APP_STATE_PATCHES_WORK:
            # neonize 0.5.2's Go DecodePatchInfo drops the REGULAR_HIGH patch type these need (the package docstring).
            raise p.NotSupported(
                _noop(
                    "%(what)s is not supported by the neonize backend (neonize 0.5.2 cannot send this app-state patch)"
                )
                % {"what": what}
            )
        await self._call(self._client().send_app_state, patch)

    async def download_media(self, *, ref: dict) -> bytes:
        neo = self._client()
        enum = neonize_lib().enum
        kinds = {
            "image": (enum.MediaType.MediaImage, enum.MediaTypeToMMS.MediaImage),
            "sticker": (enum.MediaType.MediaImage, enum.MediaTypeToMMS.MediaImage),
            "video": (enum.MediaType.MediaVideo, enum.MediaTypeToMMS.MediaVideo),
            "audio": (enum.MediaType.MediaAudio, enum.MediaTypeToMMS.MediaAudio),
            "document": (enum.MediaType.MediaDocument, enum.MediaTypeToMMS.MediaDocument),
        }
        if not ref or ref.get("kind") not in kinds or not ref.get("direct_path"):
            raise p.NotFound(_noop("this message has no downloadable media"))
        media_type, mms_type = kinds[ref["kind"]]
        return await self._call(
            neo.download_media_with_path,
            ref["direct_path"],
            base64.b64decode(ref.get("file_enc_sha256", "")),
            base64.b64decode(ref.get("file_sha256", "")),
            base64.b64decode(ref.get("media_key", "")),
            int(ref.get("file_length") or 0),
            media_type,
            mms_type,
        )
