"""The sandbox backend: a simulated WhatsApp network in the database, deterministic under a seed.

Everything the network knows (accounts, sessions, link codes, groups, newsletters, messages, media) lives
in the `Sandbox*` models, so the web process, the session workers and the tests see one network. Writes
that concern a device (a message for it, a group change, a scan of its QR code) become `SandboxDelivery`
rows; the device's client picks them up in `poke()`, which the writer triggers: directly when the client
lives in this process, else through `gateway.notify_worker(device_id, {"type": "worker.poke"})`.

Rules are WhatsApp's: only registered numbers exist, non-admins cannot change participants, announce
groups take messages from admins only, locked groups take info changes from admins only, only your own
message can be edited and only within 15 minutes, a pairing code works for the number it was asked for.
Every organization shares the network, so one more rule is the network's own: no organization links a
device as another's number or writes as it, and refusals name no group or newsletter (see `tenancy`).

Simulated peers answer what a device sends them: receipts (delivered, then read unless their privacy
hides read receipts), then by their behaviour: `echo` types and echoes, `react` reacts, `media` answers
with a picture, `quiet` does nothing. Delays are WA_SANDBOX_DELAY seconds (0.2 by default).

Helpers for the dashboard's simulated phone and for tests: seed_network, network_summary, peer_phones,
fresh_phone, phone_scan, phone_enter_code, phone_unlink, peer_send, peer_hide_phone, peer_react, peer_edit, peer_revoke,
peer_read, peer_typing, peer_vote, peer_presence, phone_edit_label, phone_label_chat, peer_join_request, peer_call,
calls_to, recorded_proxy, peer_create_group, add_group_member,
follow_newsletter, sent_to, received_by, advance_clock / set_clock (the network's clock: the edit window).

The package, bottom up (each module imports only those above it): `network` (limits, roles, clock, JIDs),
`media` (generated pictures and files), `seeding` (the seeded network and its summary), `waking` (poking
clients), `messages` (what a message carries), `groups` and `actors` (an account acting by the rules),
`reads`, `tenancy` (which numbers an organization may link or write as: every tenant shares the network),
`linking` (QR and pairing codes), `peers` and `inspection` (for the simulated phone and tests), `client`
(a device's client and the backend).
"""

from messaging.whatsapp.sandbox.calls import calls_to, peer_call, recorded_proxy
from messaging.whatsapp.sandbox.client import SandboxBackend, SandboxClient
from messaging.whatsapp.sandbox.history import history_chunks, seed_phone_history
from messaging.whatsapp.sandbox.inspection import (
    group_state,
    groups_of,
    message_state,
    received_by,
    sent_by,
    sent_to,
)
from messaging.whatsapp.sandbox.linking import phone_enter_code, phone_scan, phone_unlink, store_session
from messaging.whatsapp.sandbox.media import identicon, sample_media
from messaging.whatsapp.sandbox.network import (
    ADMIN,
    DEFAULT_PRIVACY,
    EDIT_WINDOW,
    GROUP_NAME_MAX,
    GROUP_TOPIC_MAX,
    INVITE_PREFIX,
    MEMBER,
    PAIR_ALPHABET,
    PAIR_CODE_SECONDS,
    PUSH_NAME_MAX,
    REVOKE_WINDOW,
    SUPERADMIN,
    now,
    set_clock,
)
from messaging.whatsapp.sandbox.peers import (
    add_group_member,
    follow_newsletter,
    peer_create_group,
    peer_edit,
    peer_group_action,
    peer_hide_phone,
    peer_join_request,
    peer_presence,
    peer_react,
    peer_read,
    peer_revoke,
    peer_send,
    peer_typing,
    peer_vote,
    phone_edit_label,
    phone_label_chat,
    set_join_approval,
    set_privacy,
)
from messaging.whatsapp.sandbox.reads import avatar_bytes
from messaging.whatsapp.sandbox.seeding import (
    advance_clock,
    fresh_phone,
    network_summary,
    peer_phones,
    seed_network,
    unregistered_phone,
)
from messaging.whatsapp.sandbox.tenancy import CONTACT, FOREIGN, link_refusal, send_refusal

__all__ = [
    "ADMIN",
    "CONTACT",
    "DEFAULT_PRIVACY",
    "EDIT_WINDOW",
    "FOREIGN",
    "GROUP_NAME_MAX",
    "GROUP_TOPIC_MAX",
    "INVITE_PREFIX",
    "MEMBER",
    "PAIR_ALPHABET",
    "PAIR_CODE_SECONDS",
    "PUSH_NAME_MAX",
    "REVOKE_WINDOW",
    "SUPERADMIN",
    "add_group_member",
    "calls_to",
    "peer_call",
    "recorded_proxy",
    "advance_clock",
    "avatar_bytes",
    "follow_newsletter",
    "fresh_phone",
    "group_state",
    "groups_of",
    "history_chunks",
    "identicon",
    "link_refusal",
    "message_state",
    "network_summary",
    "now",
    "peer_create_group",
    "peer_edit",
    "peer_group_action",
    "peer_hide_phone",
    "peer_join_request",
    "peer_phones",
    "peer_presence",
    "peer_react",
    "peer_read",
    "peer_revoke",
    "peer_send",
    "peer_typing",
    "peer_vote",
    "phone_edit_label",
    "phone_label_chat",
    "phone_enter_code",
    "phone_scan",
    "phone_unlink",
    "received_by",
    "sample_media",
    "SandboxBackend",
    "SandboxClient",
    "seed_network",
    "seed_phone_history",
    "send_refusal",
    "sent_by",
    "sent_to",
    "set_clock",
    "set_join_approval",
    "set_privacy",
    "store_session",
    "unregistered_phone",
]
