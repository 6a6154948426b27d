"""Drive sandbox clients directly (no session worker): an `emit` that collects events, and linked devices."""

from __future__ import annotations

import asyncio

from asgiref.sync import sync_to_async

from messaging import runtime
from messaging.models import Device
from messaging.whatsapp import protocol as p
from messaging.whatsapp import sandbox


class Events:
    """An `emit` that keeps every event and lets a test wait for one (no sleeping)."""

    def __init__(self):
        self.items: list[p.Event] = []
        self._cond = asyncio.Condition()

    async def __call__(self, event: p.Event) -> None:
        async with self._cond:
            self.items.append(event)
            self._cond.notify_all()

    def of(self, cls, predicate=None) -> list:
        return [e for e in self.items if isinstance(e, cls) and (predicate is None or predicate(e))]

    async def wait(self, cls, predicate=None, *, count: int = 1, timeout: float = 5.0):
        """The `count`-th event of `cls` matching `predicate` (waiting for it), or AssertionError."""

        def found():
            return len(self.of(cls, predicate)) >= count

        async with self._cond:
            try:
                await asyncio.wait_for(self._cond.wait_for(found), timeout)
            except TimeoutError:
                raise AssertionError(
                    f"no {cls.__name__} came; got {[type(e).__name__ for e in self.items]}"
                ) from None
        return self.of(cls, predicate)[count - 1]

    def messages(self, predicate=None) -> list[p.IncomingMessage]:
        return [e.message for e in self.of(p.MessageEvent) if predicate is None or predicate(e.message)]


class Linked:
    def __init__(self, device: Device, client: sandbox.SandboxClient, events: Events, phone: str):
        self.device, self.client, self.events, self.phone = device, client, events, phone
        self.jid = f"{phone}@s.whatsapp.net"


class Network:
    """Makes devices and clients for one test and stops them all at the end."""

    def __init__(self, organization):
        self.organization = organization
        self.clients: list[sandbox.SandboxClient] = []

    async def device(self, name: str = "Phone") -> Device:
        return await sync_to_async(Device.objects.create)(
            organization=self.organization, name=name, wanted=True
        )

    async def client(self, device: Device, jid: str | None = None) -> tuple[sandbox.SandboxClient, Events]:
        events = Events()
        client = sandbox.SandboxBackend().create_client(device_id=device.pk, jid=jid, emit=events)
        self.clients.append(client)
        return client, events

    async def link(self, phone: str | None = None, name: str = "Phone") -> Linked:
        device = await self.device(name)
        client, events = await self.client(device)
        await client.start()
        qr = await events.wait(p.QRCodeEvent)
        result = await sync_to_async(sandbox.phone_scan)(qr_code=qr.code, phone=phone)
        await client.poke()
        await events.wait(p.ConnectedEvent)
        return Linked(device, client, events, result["phone"])

    async def close(self) -> None:
        for client in self.clients:
            await client.stop()
        await sync_to_async(runtime.close_db_connections, thread_sensitive=False)()


def outgoing(
    to: str, text: str = "hello", kind: p.MessageKind = p.MessageKind.TEXT, **fields
) -> p.OutgoingMessage:
    return p.OutgoingMessage(
        id=fields.pop("id", None) or p.generate_message_id(), to=to, kind=kind, text=text, **fields
    )


async def call(fn, *args, **kwargs):
    """A sync sandbox function, from an async test."""
    return await sync_to_async(fn)(*args, **kwargs)
