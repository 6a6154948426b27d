"""The real WhatsApp backend: one neonize (whatsmeow) asyncio client per linked device (`backend.NeonizeBackend`).

The package's parts: `backend` (devices, session stores), `client` (a device's client, assembled from
`connection`, `events`, `sends` and `operations`), `names` (neonize's names, JIDs, errors), `incoming` (its
messages and answers as ours), `app_state`, `media` (audio/video details, no neonize), `secrets`
(encrypted reactions).

neonize is imported lazily (`names.neonize_lib()`): importing any neonize module loads its Go library, and if the
library file were missing neonize would download it from GitHub. Importing this package touches neither.

Where whatsmeow keeps a device's session ("store"):
- embedded default: one SQLite file per device, `<WA_SESSION_DIR>/device-<id>.sqlite3` (neonize opens any
  name that does not start with "postgres" as `file:<name>?_foreign_keys=on`);
- production (`DATABASE_URL` is a PostgreSQL URL): whatsmeow's tables in our PostgreSQL database, one store
  shared by all devices; a linked device is found by its phone number in whatsmeow's device table (read with SQL:
  neonize's lister split rows on commas, so one "Acme, Inc." broke every device); a new one is created as a
  fresh device (`new_device=True`) so it never resumes another device's session.

Guarantees (each has a test in tests/messaging/test_neonize_*.py):
- every connection gets a new neonize client, opened for the device's stored session: a reconnect after
  linking resumes the session just paired (neonize sends `new_device` to Go on every connect);
- every neonize client has a Go session ID of its own (`device-<id>-<n>`): stopping or garbage-collecting an old
  client (neonize's finalizer calls Go's Stop with its ID) never stops the live one;
- a stop during linking returns at once (after at most LINK_STOP_WAIT_SECONDS for whatsmeow's first code) and the
  Go call it leaves behind is counted in the thread pool until it returns, at most LINGERING_LINK_SECONDS later;
  QR codes it still rotates are not shown;
- a received message is stored once (by its WhatsApp ID, our database's unique key), also when WhatsApp delivers
  it again after a restart; events of a device are handled one at a time, in arrival order;
- poll votes are decrypted (whatsmeow keeps the poll's secret) and kept on the poll as voter -> option texts;
  encrypted reactions (community announcement groups) are decrypted with the reacted message's secret from
  whatsmeow's store, as whatsmeow's msgsecret.go does (neonize exports no DecryptReaction), and stored as reactions;
- people in group changes of @lid groups are named by phone number when whatsmeow knows it, as group_info() does;
- a presence without last seen has none (not year 1); a profile picture hidden from us is no picture;
- audio goes out with its length (mutagen), video with its length and picture size (its MP4 boxes) and, when
  ffmpeg is on PATH, a preview frame; captions go out as typed (neonize's builders made mentions of "@digits").

What whatsmeow and neonize guarantee on receipt, and what they do not: whatsmeow acknowledges a message to
WhatsApp once neonize's Go handler has queued it (a buffered channel of 100 per client), before Python sees it;
blocking Python's handler would only delay later events, so it does not block. A crash, or a stop, between that
acknowledgement and our store loses what is still queued in Go or scheduled on our loop: WhatsApp does not send
an acknowledged message again. (Messages the server redelivers, e.g. unacknowledged ones after a crash of Go
itself, are stored once.)

Worked around:
- neonize cannot send with our pre-generated message ID (its Go `SendMessage` passes no `SendRequestExtra`,
  so whatsmeow picks the ID). `messaging.whatsapp.sent_ids` keeps, per device and in the shared database,
  which WhatsApp ID each of our IDs went out as, and the client translates both ways: receipts, reactions,
  edits, revokes and quotes of our messages come back with our ID, whichever worker sent them, and
  revoke/edit/react/quote of our ID use WhatsApp's; nothing outside this package sees the difference. The
  attempt is recorded before the send: a message that went out is never sent again, and one whose send was
  cut off (a worker died or timed out mid-send) is not sent again either: the outbox marks it `unknown`
  ("Sent?") and a person decides. Exactly once by ID therefore holds on this backend too, at the price of
  asking a person in that rare case (whatsmeow cannot list what a chat received to check by itself);
- neonize's audio/video builders need ffmpeg: we upload and describe those ourselves (`media`);
- neonize does not tell Python when linking timed out: the last QR code's expiry ends it here.

Remaining gaps:
- a vote on a poll, or an encrypted reaction to a message, whose secret whatsmeow does not have (sent before this
  device was linked) is dropped; the reaction decryption follows whatsmeow's source and its store's tables, and
  was checked against them, not against WhatsApp;
- a voice note goes out without a waveform, and a video without a preview when ffmpeg is not on PATH;
- a stop before whatsmeow's first QR code that outlasts LINK_STOP_WAIT_SECONDS (a slow network) leaves a Go call
  that ends only when whatsmeow's QR channel does: it stays counted in the pool;
- events still queued in Go when a client stops are lost (see above).

Not supported by neonize 0.5.2 (the operation raises `NotSupported`; see each method):
- approve/reject group join requests (whatsmeow's UpdateGroupRequestParticipants is not exported);
- star/unstar and delete-for-me: app-state patches. `send_app_state` exists, but the Go side's
  `DecodePatchInfo` maps no patch type for them (REGULAR_HIGH is missing and the others are compared by
  pointer), so the patch would go to an unnamed collection; we refuse instead of sending a broken patch
  (`star_patch`/`delete_for_me_patch` build it; flip app_state.APP_STATE_PATCHES_WORK once neonize is fixed);
- business profile (whatsmeow's GetBusinessProfile is not exported);
- group join-request notifications and history sync are not turned into events.
"""
