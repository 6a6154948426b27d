"""App-state patches (star, delete for me) as whatsmeow builds them, for neonize's send_app_state."""

from __future__ import annotations

import time

from messaging.whatsapp import protocol as p
from messaging.whatsapp.neonize.names import (
    neonize_lib,
)

# Set to True once neonize's Go DecodePatchInfo keeps the patch type (see the package docstring).
APP_STATE_PATCHES_WORK = False


def star_patch(*, chat: str, message_id: str, sender: str, from_me: bool, starred: bool):
    """whatsmeow's appstate.BuildStar as a neonize PatchInfo (see APP_STATE_PATCHES_WORK)."""
    lib = neonize_lib()
    value = lib.sync.SyncActionValue(starAction=lib.sync.StarAction(starred=starred))
    return _patch(
        ["star", chat, message_id, "1" if from_me else "0", _participant(chat, sender, from_me)], 2, value
    )


def delete_for_me_patch(*, chat: str, message_id: str, sender: str, from_me: bool):
    lib = neonize_lib()
    action = lib.sync.DeleteMessageForMeAction(deleteMedia=True, messageTimestamp=int(time.time() * 1000))
    value = lib.sync.SyncActionValue(deleteMessageForMeAction=action)
    return _patch(
        [
            "deleteMessageForMe",
            chat,
            message_id,
            "1" if from_me else "0",
            _participant(chat, sender, from_me),
        ],
        3,
        value,
    )


def _participant(chat: str, sender: str, from_me: bool) -> str:
    # In a one-to-one chat (or for our own message) the index names no participant, as WhatsApp Web does.
    return sender if p.is_group(chat) and not from_me and sender else "0"


def _patch(index: list[str], version: int, value):
    np = neonize_lib().np
    return np.PatchInfo(
        Timestamp=time.time_ns(),  # the Go side reads nanoseconds and requires it
        Type=np.PatchInfo.REGULAR_HIGH,
        Mutations=[np.MutationInfo(Index=index, Version=version, Value=value)],
    )
