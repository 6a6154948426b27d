"""Encrypted reactions (community announcement groups), decrypted as whatsmeow's DecryptReaction does.

neonize 0.5.2 exports no DecryptReaction. The reaction is encrypted with a key derived from the reacted message's
secret, which whatsmeow keeps in its session store (whatsmeow_message_secrets): read there, then HKDF-SHA256 and
AES-GCM as in whatsmeow's msgsecret.go (generateMsgSecretKey, use case "Enc Reaction", no additional data).
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

ENC_REACTION = "Enc Reaction"


def reaction_key(secret: bytes, *, message_id: str, original_sender: str, reactor: str) -> bytes:
    """The AES-GCM key of a reaction to `message_id` (senders as "user@server", without a device)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    info = f"{message_id}{original_sender}{reactor}{ENC_REACTION}".encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


def decrypt(key: bytes, iv: bytes, payload: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(key).decrypt(iv, payload, None)


def find_secret(
    store: str | Path, *, our_user: str, chat: str, sender: str, message_id: str
) -> tuple[bytes, str] | None:
    """(secret, the sender it is stored under) of a message in whatsmeow's store: a SQLite file, or a PostgreSQL
    URL (the store shared by all devices). whatsmeow stores a sender by phone number or by LID: both are tried."""
    postgres = str(store).startswith("postgres")
    mark = "%s" if postgres else "?"
    with closing(_connect(store, postgres)) as conn:
        senders = [sender, *_alternates(conn, mark, sender)]
        rows = conn.execute(
            f"SELECT key, sender_jid FROM whatsmeow_message_secrets WHERE chat_jid = {mark} AND message_id = {mark}"
            f" AND (our_jid = {mark} OR our_jid LIKE {mark})",
            (chat, message_id, f"{our_user}@s.whatsapp.net", f"{our_user}:%@s.whatsapp.net"),
        ).fetchall()
    for key, stored_sender in rows:
        if stored_sender in senders:
            return bytes(key), stored_sender
    return None


def _connect(store, postgres: bool):
    if postgres:
        import psycopg

        return psycopg.connect(str(store), connect_timeout=10)
    return sqlite3.connect(f"{Path(store).resolve().as_uri()}?mode=ro", uri=True)  # read only, never created


def _alternates(conn, mark: str, sender: str) -> list[str]:
    user, _, server = sender.partition("@")
    if server == "lid":
        query, suffix = f"SELECT pn FROM whatsmeow_lid_map WHERE lid = {mark}", "@s.whatsapp.net"
    elif server == "s.whatsapp.net":
        query, suffix = f"SELECT lid FROM whatsmeow_lid_map WHERE pn = {mark}", "@lid"
    else:
        return []
    return [row[0] + suffix for row in conn.execute(query, (user,)).fetchall()]
