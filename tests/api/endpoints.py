"""Every endpoint of the API with a valid request, what it needs, and how it answers with no worker holding the device.

test_conventions.py runs the same checks over every row: wrong/revoked key (401), read-only key on a
write (403), another organization's device (404), each required field missing (400 naming it), and the
device not connected (401 AUTHENTICATION_ERROR, as the peer; sends are accepted and queued instead).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from tests.api.conftest import PEER

GROUP = "120363000000000001@g.us"
NEWSLETTER = "120363000000000002@newsletter"
MESSAGE_ID = "3EB0AAAAAAAAAAAAAAAAAA"

# A real (tiny) PNG, JPEG-free on purpose: the type check reads the first bytes.
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82"
)
WEBP = b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00/\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00"
OGG = b"OggS\x00\x02" + b"\x00" * 40
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 32
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def upload(name: str, data: bytes) -> io.BytesIO:
    f = io.BytesIO(data)
    f.name = name
    return f


@dataclass
class Endpoint:
    router: str
    method: str  # GET, POST, PATCH, DELETE
    path: str
    data: dict = field(default_factory=dict)  # query (GET), JSON body (POST), or form fields
    form: bool = False  # multipart
    files: dict = field(default_factory=dict)  # field -> (name, bytes)
    write: bool = False
    required: tuple[str, ...] = ()
    offline: int | str = 401  # status with no worker holding the device ("queued" for sends)
    device_in_path: bool = False  # /devices/{id}: the device is named in the path, not chosen

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"

    def request(self, api, *, omit: str | None = None, path: str | None = None, headers=None):
        data = {k: v for k, v in self.data.items() if k != omit}
        path = path or self.path
        if self.method == "GET":
            return api.get(path, data, headers=headers)
        if self.method == "DELETE":
            return api.delete(path, headers=headers)
        if self.method == "PATCH":
            return api.patch(path, data, headers=headers)
        if self.form:
            body = dict(data)
            for name, (filename, content) in self.files.items():
                if name != omit:
                    body[name] = upload(filename, content)
            return api.post_form(path, body, headers=headers)
        return api.post(path, data, headers=headers)


E = Endpoint
ENDPOINTS: list[Endpoint] = [
    # app
    E("app", "GET", "/app/login", write=True, offline=200),
    E("app", "GET", "/app/login-with-code", {"phone": "905551112233"}, write=True, required=("phone",)),
    E("app", "GET", "/app/logout", write=True, offline=200),
    E("app", "GET", "/app/reconnect", write=True, offline=200),
    E("app", "GET", "/app/devices", offline=200),
    E("app", "GET", "/app/status", offline=200),
    E("app", "GET", "/app/info", offline=200),
    # user
    E("user", "GET", "/user/info", {"phone": PEER}, required=("phone",)),
    E("user", "GET", "/user/avatar", {"phone": PEER, "is_preview": "true"}, required=("phone",)),
    E(
        "user",
        "POST",
        "/user/avatar",
        form=True,
        files={"avatar": ("me.png", PNG)},
        write=True,
        required=("avatar",),
    ),
    E("user", "POST", "/user/pushname", {"push_name": "Yeni Isim"}, write=True, required=("push_name",)),
    E("user", "GET", "/user/my/privacy"),
    E("user", "GET", "/user/my/groups"),
    E("user", "GET", "/user/my/newsletters"),
    E("user", "GET", "/user/my/contacts"),
    E("user", "GET", "/user/check", {"phone": "905551112233"}, required=("phone",)),
    E("user", "GET", "/user/business-profile", {"phone": PEER}, required=("phone",)),
    # send
    E(
        "send",
        "POST",
        "/send/message",
        {"phone": PEER, "message": "Merhaba"},
        write=True,
        required=("phone", "message"),
        offline="queued",
    ),
    E(
        "send",
        "POST",
        "/send/image",
        {"phone": PEER, "caption": "c", "view_once": "false"},
        form=True,
        files={"image": ("a.png", PNG)},
        write=True,
        required=("phone", "image"),
        offline="queued",
    ),
    E(
        "send",
        "POST",
        "/send/audio",
        {"phone": PEER},
        form=True,
        files={"audio": ("a.ogg", OGG)},
        write=True,
        required=("phone", "audio"),
        offline="queued",
    ),
    E(
        "send",
        "POST",
        "/send/file",
        {"phone": PEER, "caption": "doc"},
        form=True,
        files={"file": ("d.pdf", PDF)},
        write=True,
        required=("phone", "file"),
        offline="queued",
    ),
    E(
        "send",
        "POST",
        "/send/video",
        {"phone": PEER},
        form=True,
        files={"video": ("v.mp4", MP4)},
        write=True,
        required=("phone", "video"),
        offline="queued",
    ),
    E(
        "send",
        "POST",
        "/send/sticker",
        {"phone": PEER},
        form=True,
        files={"sticker": ("s.webp", WEBP)},
        write=True,
        required=("phone", "sticker"),
        offline="queued",
    ),
    E(
        "send",
        "POST",
        "/send/contact",
        {"phone": PEER, "contact_name": "Ahmet", "contact_phone": "905551112244"},
        write=True,
        required=("phone", "contact_name", "contact_phone"),
        offline="queued",
    ),
    E(
        "send",
        "POST",
        "/send/link",
        {"phone": PEER, "link": "https://www.google.com", "caption": "bak"},
        write=True,
        required=("phone", "link"),
        offline="queued",
    ),
    E(
        "send",
        "POST",
        "/send/location",
        {"phone": PEER, "latitude": "41.0082", "longitude": 28.9784},
        write=True,
        required=("phone", "latitude", "longitude"),
        offline="queued",
    ),
    E(
        "send",
        "POST",
        "/send/poll",
        {"phone": PEER, "question": "Renk?", "options": ["Mavi", "Yeşil"], "max_answer": 1},
        write=True,
        required=("phone", "question", "options"),
        offline="queued",
    ),
    E("send", "POST", "/send/presence", {"type": "available"}, write=True, required=("type",)),
    E(
        "send",
        "POST",
        "/send/chat-presence",
        {"phone": PEER, "action": "start"},
        write=True,
        required=("phone", "action"),
    ),
    # message
    *[
        E("message", "POST", f"/message/{MESSAGE_ID}/{action}", body, write=True, required=tuple(body))
        for action, body in [
            ("revoke", {"phone": PEER}),
            ("delete", {"phone": PEER}),
            ("reaction", {"phone": PEER, "emoji": "👍"}),
            ("update", {"phone": PEER, "message": "edited"}),
            ("read", {"phone": PEER}),
            ("star", {"phone": PEER}),
            ("unstar", {"phone": PEER}),
        ]
    ],
    E("message", "GET", f"/message/{MESSAGE_ID}/download", offline=404),
    # (the message does not exist: test_peer_compat forwards one that does, offline too)
    E(
        "message",
        "POST",
        f"/message/{MESSAGE_ID}/forward",
        {"phone": PEER},
        write=True,
        required=("phone",),
        offline=404,
    ),
    # chat (stored history)
    E("chat", "GET", "/chats", {"limit": 10}, offline=200),
    E("chat", "GET", f"/chat/{PEER}/messages", {"limit": 10}, offline=404),
    *[
        E("chat", "POST", f"/chat/{PEER}/{action}", body, write=True, required=tuple(required))
        for action, body, required in [
            ("pin", {"pinned": True}, ["pinned"]),
            ("archive", {"archived": "true"}, ["archived"]),
            ("disappearing", {"timer_seconds": 86400}, ["timer_seconds"]),
            ("label", {"label_id": "3", "label_name": "Yeni", "labeled": True}, ["label_id"]),
        ]
    ],
    # group
    E(
        "group",
        "POST",
        "/group",
        {"title": "Yeni Grup", "participants": ["905551112233"]},
        write=True,
        required=("title", "participants"),
    ),
    *[
        E(
            "group",
            "POST",
            path,
            {"group_id": GROUP, "participants": ["905551112233"]},
            write=True,
            required=("group_id", "participants"),
        )
        for path in [
            "/group/participants",
            "/group/participants/remove",
            "/group/participants/promote",
            "/group/participants/demote",
            "/group/participant-requests/approve",
            "/group/participant-requests/reject",
        ]
    ],
    E(
        "group",
        "POST",
        "/group/join-with-link",
        {"link": "https://chat.whatsapp.com/ABCDEFGH"},
        write=True,
        required=("link",),
    ),
    E("group", "GET", "/group/participant-requests", {"group_id": GROUP}, required=("group_id",)),
    E("group", "POST", "/group/leave", {"group_id": GROUP}, write=True, required=("group_id",)),
    E("group", "GET", "/group/info", {"group_id": GROUP}, required=("group_id",)),
    E("group", "GET", "/group/participants", {"group_id": GROUP}, required=("group_id",)),
    E(
        "group",
        "GET",
        "/group/info-from-link",
        {"link": "https://chat.whatsapp.com/ABCDEFGH"},
        required=("link",),
    ),
    E("group", "GET", "/group/participants/export", {"group_id": GROUP}, required=("group_id",)),
    E("group", "GET", "/group/invite-link", {"group_id": GROUP}, required=("group_id",)),
    E(
        "group",
        "POST",
        "/group/name",
        {"group_id": GROUP, "name": "Yeni"},
        write=True,
        required=("group_id", "name"),
    ),
    E(
        "group",
        "POST",
        "/group/topic",
        {"group_id": GROUP, "topic": "Konu"},
        write=True,
        required=("group_id",),
    ),
    E(
        "group",
        "POST",
        "/group/photo",
        {"group_id": GROUP},
        form=True,
        files={"photo": ("g.png", PNG)},
        write=True,
        required=("group_id", "photo"),
    ),
    E(
        "group",
        "POST",
        "/group/locked",
        {"group_id": GROUP, "locked": True},
        write=True,
        required=("group_id", "locked"),
    ),
    E(
        "group",
        "POST",
        "/group/announce",
        {"group_id": GROUP, "announce": "1"},
        write=True,
        required=("group_id", "announce"),
    ),
    # newsletter
    E(
        "newsletter",
        "POST",
        "/newsletter/unfollow",
        {"newsletter_id": NEWSLETTER},
        write=True,
        required=("newsletter_id",),
    ),
    E(
        "newsletter",
        "GET",
        "/newsletter/messages",
        {"newsletter_id": NEWSLETTER},
        required=("newsletter_id",),
    ),
    E(
        "call",
        "POST",
        "/call/reject",
        {"caller_jid": PEER, "call_id": "CALL1"},
        write=True,
        required=("caller_jid", "call_id"),
    ),
    # devices (the device is in the path: {device} is replaced by the test)
    E("devices", "GET", "/devices", offline=200),
    E("devices", "POST", "/devices", {"name": "Second"}, write=True, offline=200),
    E("devices", "GET", "/devices/{device}", offline=200, device_in_path=True),
    E("devices", "GET", "/devices/{device}/status", offline=200, device_in_path=True),
    E("devices", "GET", "/devices/{device}/login", write=True, offline=200, device_in_path=True),
    E(
        "devices",
        "POST",
        "/devices/{device}/login/code",
        {"phone": "905551112233"},
        write=True,
        required=("phone",),
        device_in_path=True,
    ),
    E("devices", "POST", "/devices/{device}/logout", write=True, offline=200, device_in_path=True),
    E("devices", "POST", "/devices/{device}/reconnect", write=True, offline=200, device_in_path=True),
    E("devices", "DELETE", "/devices/{device}", write=True, offline=200, device_in_path=True),
    E("devices", "GET", "/devices/{device}/webhook", offline=200, device_in_path=True),
    E(
        "devices",
        "PATCH",
        "/devices/{device}/webhook",
        {"webhook_url": "https://hooks.example.com/wa", "webhook_events": ["message", "message.ack"]},
        write=True,
        required=("webhook_url",),
        offline=200,
        device_in_path=True,
    ),
]


def of() -> list:
    import pytest

    return [pytest.param(e, id=e.id) for e in ENDPOINTS]


def required_of() -> list:
    import pytest

    return [pytest.param(e, name, id=f"{e.id} without {name}") for e in ENDPOINTS for name in e.required]


def writes_of() -> list:
    import pytest

    return [pytest.param(e, id=e.id) for e in ENDPOINTS if e.write]
