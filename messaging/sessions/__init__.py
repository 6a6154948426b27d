"""Session workers: the processes that hold leased devices' WhatsApp clients and run the web tier's commands.

One `SessionWorker` per process, on the runtime loop (`messaging.runtime`). It has a channel of its own (the
web tier finds it through the device's lease) and also listens on the shared `gateway.WORKERS_CHANNEL`, where
any one worker answers "claim this device". Ownership is a `DeviceLease` row per device: taken only when
there is none or it has expired (a conditional UPDATE, or an INSERT that the unique device column lets only
one worker win), renewed by the heartbeat every WA_LEASE_SECONDS/3, released on a clean stop. A worker that
dies stops renewing, and another takes its devices on its next heartbeat once the lease has run out.

Workers share the devices: each holds at most its fair share (wanted devices ÷ live workers, rounded up, capped
by WA_MAX_DEVICES_PER_WORKER). One that holds more than that, because another worker joined, hands the extra
devices over on its heartbeat: it stops their clients, frees their leases and asks on `WORKERS_CHANNEL` for a
worker to claim them (a worker at its share refuses, so the newcomer takes them).

Every database call runs in the runtime's DB threads (`runtime.db`), never on the loop.

The package's modules: `worker` (the class, its lifecycle and clients), `ownership` (heartbeat, claims,
handovers), `sending` (the outbox), `commands` (channels and commands), `leases` (the rows, sync) and
`embedded` (the embedded default's worker). Everything other code uses is importable from here.
"""

from messaging.sessions.commands import POKE
from messaging.sessions.embedded import embedded_worker, run_embedded_sessions
from messaging.sessions.leases import (
    abandon_linking,
    beat_worker,
    claimable_devices,
    device_jid,
    device_proxy,
    fair_share,
    handover_order,
    mark_stopped,
    new_worker_id,
    register_worker,
    release_leases,
    renew_leases,
    take_lease,
    unregister_worker,
    unwanted_devices,
)
from messaging.sessions.ownership import POKES_PER_HEARTBEAT
from messaging.sessions.sending import PERMANENT_SEND_ERRORS, SEND_TIMEOUT_EXTRA, _send_many
from messaging.sessions.worker import BACKOFF, STOP_TIMEOUT, SessionWorker

__all__ = [
    "BACKOFF",
    "PERMANENT_SEND_ERRORS",
    "POKE",
    "POKES_PER_HEARTBEAT",
    "SEND_TIMEOUT_EXTRA",
    "STOP_TIMEOUT",
    "SessionWorker",
    "_send_many",
    "abandon_linking",
    "beat_worker",
    "claimable_devices",
    "device_jid",
    "device_proxy",
    "embedded_worker",
    "fair_share",
    "handover_order",
    "mark_stopped",
    "new_worker_id",
    "register_worker",
    "release_leases",
    "renew_leases",
    "run_embedded_sessions",
    "take_lease",
    "unregister_worker",
    "unwanted_devices",
]
