"""The session worker's side of the outbox: drain a device's queued messages, each sent exactly once.

A part of `SessionWorker` (see `messaging.sessions.worker`); what is stored, claimed and marked lives in
`messaging.services.outbox`.
"""

from __future__ import annotations

import asyncio
import logging

from messaging import events, gateway, runtime
from messaging.whatsapp import protocol

logger = logging.getLogger("messaging.sessions")  # one name for the whole worker, as before the split

SEND_TIMEOUT_EXTRA = 5.0  # a send may take this much longer than a command before it counts as failed
# Errors that will not go away by trying again: the message fails at once.
PERMANENT_SEND_ERRORS = protocol.REFUSALS


class OutboxMixin:
    """Drains the outbox of the devices the worker holds."""

    async def drain(self, device_id: int) -> None:
        """Send the device's queued messages, oldest first, one at a time, each exactly once.

        Claimed in batches (what queued up meanwhile goes out together, see `outbox.claim_batch`); the sent
        ones of a batch are marked sent together, with the claim of the next batch."""
        from messaging.services import outbox

        if device_id in self._draining:
            self._drain_again.add(device_id)  # the running drain looks again before it stops
            return
        self._draining.add(device_id)
        batch: list = []  # claimed, not yet sent
        looked = False  # whether the claim of `batch` was the look for more (empty: nothing left)
        try:
            while True:
                if not looked:  # (a nudge that came after the look that was done keeps its mark)
                    self._drain_again.discard(device_id)
                client = self.clients.get(device_id)
                if client is None or not client.is_connected() or self._stopping:
                    return
                if not batch and not looked:
                    batch = await _despite_cancel(runtime.db(outbox.claim_batch, device_id), _release)
                looked = False
                if not batch:
                    if device_id in self._drain_again:
                        continue
                    return
                go_on, batch, looked = await self._send_batch(device_id, client, batch)
                if not go_on:
                    return
        finally:
            try:
                if batch:  # claimed but not sent (stopping, disconnected, cancelled): back to queued
                    await asyncio.shield(_release(batch))
            finally:
                # Only now may another drain start: one started before the release would claim the same
                # rows again (sending ones count as unsent) and the release would undo that claim.
                self._draining.discard(device_id)

    async def _send_batch(
        self, device_id: int, client: protocol.WhatsAppClient, batch: list
    ) -> tuple[bool, list, bool]:
        """Send the claimed messages of `batch` in order (taking each out of the list once it is done with),
        then mark the sent ones sent, claiming the next batch with that write. Returns whether to go on, the
        claimed messages not sent yet (the next batch, or what is left of this one) and whether they are the
        look for more."""
        from messaging.services import outbox

        sent: list = []
        go_on = True
        # A full batch leaves more behind, most likely: those stored while Redis is down come with no nudge.
        full = len(batch) >= outbox.CLAIM_BATCH
        try:
            timeout = (gateway.command_timeout() + SEND_TIMEOUT_EXTRA) * len(batch)
            try:
                results = await asyncio.wait_for(
                    _send_many(client, [outgoing for _, outgoing, _ in batch]), timeout
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # nothing is known of any of them: the first counts a failed try
                results = [exc]
            for result in results:
                message_id, _, message = batch[0]
                if isinstance(result, protocol.SendResult):
                    batch.pop(0)
                    sent.append((message, result))
                elif isinstance(result, protocol.NotConnected):
                    go_on = False  # it and the rest go out when the device is back
                    break
                elif isinstance(result, protocol.SendOutcomeUnknown):
                    batch.pop(0)
                    await events.deliver(await runtime.db(outbox.mark_unknown, message_id, result.message))
                elif isinstance(result, PERMANENT_SEND_ERRORS):
                    batch.pop(0)
                    await events.deliver(await runtime.db(outbox.mark_failed, message_id, result.message))
                else:
                    batch.pop(0)
                    error = getattr(result, "message", "") or str(result) or type(result).__name__
                    logger.warning("device %s: sending message %s failed: %s", device_id, message_id, error)
                    if (failed := await runtime.db(outbox.requeue, message_id, error)) is not None:
                        await events.deliver(failed)
                    go_on = False  # try again on the next heartbeat
                    break
        except asyncio.CancelledError:
            if sent:  # they went out: recorded even so
                await asyncio.shield(self._record_sent(sent, device_id, claim=False))
            raise
        if not sent:
            return go_on, batch, False
        # Look for more with that write when a nudge came meanwhile (every message stored after this batch was
        # claimed is followed by one), or when the batch was full or nudges cannot come (the channel layer is
        # down: without this, a backlog would go out one batch per heartbeat). The heartbeat looks too.
        look = (
            go_on
            and not batch
            and (device_id in self._drain_again or full or gateway.layer_recently_failed())
        )
        if look:
            self._drain_again.discard(device_id)  # this look covers what was stored before it
        following = await self._record_sent(sent, device_id, claim=look)
        if go_on and not batch:
            return True, following, True
        return go_on, batch, False

    async def _record_sent(self, sent: list, device_id: int, *, claim: bool) -> list:
        from messaging.services import outbox

        async def published_and_released(result) -> None:  # cancelled meanwhile: the write was done
            await events.deliver(result[0])
            await _release(result[1])

        outcomes, following = await _despite_cancel(
            runtime.db(outbox.sent_and_claim_next, sent, device_id, claim=claim), published_and_released
        )
        await events.deliver(outcomes)
        return following


async def _despite_cancel(call, on_cancel):
    """Await `call`, a database call: its thread runs to the end even if the caller is cancelled meanwhile.
    Then its result goes to `on_cancel` (give back what it claimed) before the cancellation goes on, so a
    drain stopped in the middle of a claim leaves no message "sending" with a try it never made."""
    task = asyncio.ensure_future(call)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        try:
            await on_cancel(await task)
        except Exception:
            logger.exception("cleaning up after a cancelled outbox write failed")
        raise


async def _release(claimed: list) -> None:
    """Claimed messages that were not sent: back to queued, the try not counted."""
    from messaging.services import outbox

    if claimed:
        await runtime.db(outbox.release_claims, [c[0] for c in claimed])


async def _send_many(client, messages: list[protocol.OutgoingMessage]) -> list:
    """`client.send_many` (or one at a time for a client without it: a test double), results as it gives them.

    A client that does not read stored files itself (READS_MEDIA_PATH) gets each message with a stored file
    in a send of its own, its bytes read just before it: a claimed batch of large files is never in memory
    at once. The runs stop where a run stopped (an error other than a refusal of one message)."""
    send_many = getattr(client, "send_many", None)

    async def send(run: list[protocol.OutgoingMessage]) -> list:
        if send_many is None:
            return await protocol.send_in_order(client, run)
        return await send_many(messages=run)

    if getattr(client, "READS_MEDIA_PATH", False) or not any(m.media_path for m in messages):
        return await send(messages)
    results: list = []
    for run in _media_runs(messages):
        try:
            if run[0].media_path:
                run = [await asyncio.to_thread(protocol.with_media, run[0])]
            answered = await send(run)
        except protocol.REFUSALS as exc:  # its file is gone: that message alone is refused
            answered = [exc]
        except Exception as exc:
            if not results:
                raise
            answered = [exc]  # the earlier runs went out: their results count
        results.extend(answered)
        last = answered[-1] if answered else None
        if len(answered) < len(run) or (
            isinstance(last, Exception) and not isinstance(last, protocol.REFUSALS)
        ):
            break
    return results


def _media_runs(messages: list[protocol.OutgoingMessage]) -> list[list[protocol.OutgoingMessage]]:
    """`messages` in order, cut so that each message with a stored file is a run of its own."""
    runs: list[list[protocol.OutgoingMessage]] = []
    for message in messages:
        if message.media_path or not runs or runs[-1][-1].media_path:
            runs.append([message])
        else:
            runs[-1].append(message)
    return runs


def devices_with_pending(device_ids) -> set[int]:
    """Of `device_ids`, those with messages waiting to be sent (sync; the heartbeat drains them)."""
    from messaging.services import outbox

    if not device_ids:
        return set()
    return outbox.devices_with_pending(device_ids)
