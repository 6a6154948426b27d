"""A minimal in-memory backend for session-worker tests that must not depend on the sandbox network."""

from __future__ import annotations

import time

from messaging.whatsapp import protocol


class FakeClient:
    def __init__(self, backend: FakeBackend, device_id: int, jid: str | None, emit):
        self.backend, self.device_id, self.jid, self.emit = backend, device_id, jid, emit
        self.connected = False
        self.stopped = False

    async def start(self):
        self.backend.starts.append(self.device_id)
        if self.jid and self.backend.online:
            await self.come_online()
        elif not self.jid:
            await self.emit(
                protocol.QRCodeEvent(code=f"QR-{self.device_id}-{len(self.backend.starts)}", expires_in=20)
            )

    async def come_online(self):
        self.connected = True
        await self.emit(protocol.ConnectedEvent(jid=self.jid, push_name="Fake"))

    async def scan(self, jid: str):
        self.jid = jid
        await self.emit(protocol.PairedEvent(jid=jid, push_name="Fake"))
        await self.come_online()

    async def stop(self):
        self.stopped = True
        self.connected = False

    def is_connected(self):
        return self.connected

    async def pair_phone(self, *, phone):
        return protocol.PairCode(code="ABCD-EFGH")

    async def logout(self):
        self.connected = False
        await self.emit(protocol.LoggedOutEvent(reason="logged out"))

    async def reconnect(self):
        await self.come_online()

    async def send(self, *, message):
        if not self.connected:
            raise protocol.NotConnected("offline")
        if message.id not in self.backend.sent:  # WhatsApp drops a repeated ID
            self.backend.sent.append(message.id)
        return protocol.SendResult(id=message.id, timestamp=time.time())

    async def user_info(self, *, jids):
        if "0@s.whatsapp.net" in jids:
            raise protocol.NotFound("no such user")
        return [protocol.UserInfo(jid=j, status="hi") for j in jids]

    async def download_media(self, *, ref):
        return b""


class FakeBackend(protocol.Backend):
    name = "fake"

    def __init__(self, *, online: bool = True):
        self.online = online
        self.clients: dict[int, FakeClient] = {}
        self.starts: list[int] = []
        self.sent: list[str] = []

    def create_client(self, *, device_id, jid, emit):
        client = FakeClient(self, device_id, jid, emit)
        self.clients[device_id] = client
        return client
