"""The /send endpoints: behaviour on the sandbox (the conventions every endpoint keeps: test_conventions.py)."""

import os

import pytest

from messaging.models import Message
from tests.api.conftest import PEER, ApiClient, error
from tests.api.endpoints import MP4, OGG, PDF, PNG, WEBP, upload

# ------------------------------------------------------------------------------------------ on the sandbox


@pytest.mark.django_db(transaction=True)
def test_every_kind_is_sent_and_reaches_the_peer(wa, org, api_key):
    device = wa.linked_device(org)
    api = ApiClient(api_key, style="basic")  # existing clients only know Basic
    peer = wa.peers[-1]
    to = f"+{peer[:1]} {peer[1:4]}-{peer[4:]}"  # digits with + and dashes are a recipient too
    answers = {
        "text": api.post("/send/message", {"phone": to, "message": "Merhaba", "is_forwarded": True}),
        "contact": api.post(
            "/send/contact", {"phone": to, "contact_name": "Ahmet Yılmaz", "contact_phone": "905551112233"}
        ),
        "link": api.post("/send/link", {"phone": to, "link": "https://www.google.com", "caption": "Bak"}),
        "location": api.post("/send/location", {"phone": to, "latitude": "41.0082", "longitude": "28.9784"}),
        "poll": api.post(
            "/send/poll",
            {"phone": to, "question": "Renk?", "options": ["Mavi", "Yeşil", "Kırmızı"], "max_answer": 1},
        ),
        "image": api.post_form(
            "/send/image", {"phone": to, "caption": "Resim", "view_once": "1", "image": upload("a.png", PNG)}
        ),
        "audio": api.post_form("/send/audio", {"phone": to, "audio": upload("a.ogg", OGG)}),
        "document": api.post_form(
            "/send/file", {"phone": to, "caption": "Belge", "file": upload("d.pdf", PDF)}
        ),
        "video": api.post_form(
            "/send/video", {"phone": to, "view_once": "false", "video": upload("v.mp4", MP4)}
        ),
        "sticker": api.post_form("/send/sticker", {"phone": to, "sticker": upload("s.webp", WEBP)}),
    }
    ids = {}
    for kind, answer in answers.items():
        assert answer.status_code == 200, (kind, answer.content)
        body = answer.json()
        assert body["code"] == "SUCCESS" and body["results"]["status"] == "sent", (kind, body)
        ids[kind] = body["results"]["message_id"]
    received = {m["id"]: m for m in wa.sandbox.received_by(peer)}
    for kind, wa_id in ids.items():
        assert received[wa_id]["kind"] == kind
        assert Message.objects.get(wa_id=wa_id, device=device).status in ("sent", "delivered", "read")
    assert received[ids["text"]]["text"] == "Merhaba"
    assert received[ids["image"]]["caption"] == "Resim"
    assert received[ids["document"]]["media"]["mime_type"] == "application/pdf"
    assert Message.objects.get(wa_id=ids["text"]).is_forwarded
    assert Message.objects.get(wa_id=ids["image"]).view_once

    # a reply quotes the message it answers
    reply = api.post(
        "/send/message", {"phone": peer, "message": "Evet", "reply_message_id": ids["text"]}
    ).json()
    assert Message.objects.get(wa_id=reply["results"]["message_id"]).reply_to_id == ids["text"]

    # WhatsApp refuses a number that is not on it: the answer says so, and the message is marked failed
    nobody = wa.sandbox.unregistered_phone()
    refused = error(api.post("/send/message", {"phone": nobody, "message": "?"}), 422, "SEND_FAILED")
    assert refused["results"]["status"] == "failed"
    assert Message.objects.get(wa_id=refused["results"]["message_id"]).status == "failed"

    assert api.post("/send/presence", {"type": "unavailable"}).json()["results"] == {"type": "unavailable"}
    typing = api.post("/send/chat-presence", {"phone": peer, "action": "start"}).json()
    assert typing["code"] == "SUCCESS" and typing["results"]["state"] == "composing"
    assert api.post("/send/chat-presence", {"phone": peer, "action": "stop"}).json()["code"] == "SUCCESS"


@pytest.mark.django_db(transaction=True)
def test_a_send_while_offline_is_queued_then_sent_when_back(wa, org, api_key):
    device = wa.linked_device(org)
    wa.stop_worker()
    api = ApiClient(api_key)
    answer = api.post("/send/message", {"phone": wa.peers[0], "message": "later"}).json()
    assert answer["results"]["status"] == "queued"
    wa_id = answer["results"]["message_id"]
    wa.start_worker()
    wa.wait_event("message.sent", device=device, predicate=lambda d: d["id"] == wa_id, timeout=20)
    assert [m["id"] for m in wa.sandbox.received_by(wa.peers[0])].count(wa_id) == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/send/message", {"phone": "hello", "message": "x"}, "phone"),
        ("/send/message", {"phone": "123@example.com", "message": "x"}, "phone"),
        ("/send/message", {"phone": PEER, "message": "   "}, "message"),
        ("/send/message", {"phone": PEER, "message": "x", "is_forwarded": "maybe"}, "is_forwarded"),
        ("/send/message", {"phone": ["905551112233"], "message": "x"}, "phone"),
        ("/send/contact", {"phone": PEER, "contact_name": "A", "contact_phone": "call me"}, "contact_phone"),
        ("/send/link", {"phone": PEER, "link": "javascript:alert(1)"}, "link"),
        ("/send/location", {"phone": PEER, "latitude": "north", "longitude": 1}, "latitude"),
        ("/send/location", {"phone": PEER, "latitude": 91, "longitude": 1}, "latitude"),
        ("/send/location", {"phone": PEER, "latitude": 1, "longitude": "NaN"}, "longitude"),
        ("/send/poll", {"phone": PEER, "question": "Q", "options": ["only one"], "max_answer": 1}, "options"),
        ("/send/poll", {"phone": PEER, "question": "Q", "options": ["a", "a"], "max_answer": 1}, "options"),
        ("/send/presence", {"type": "busy"}, "type"),
        ("/send/chat-presence", {"phone": PEER, "action": "dance"}, "action"),
    ],
)
def test_malformed_field_is_400_naming_it(api, path, body, field):
    before = Message.objects.count()
    answer = error(api.post(path, body), 400, "VALIDATION_ERROR")
    assert answer["message"].startswith(f"{field}:"), answer
    assert Message.objects.count() == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("options", "max_answer", "field"),
    [(["a", "b"], 3, "max_answer"), (["a", " a "], 1, "options")],
)
def test_a_poll_as_documented_whose_fields_contradict_is_422(api, options, max_answer, field):
    # Each field is as the document says; together they cannot make a poll (which the document cannot say).
    body = {"phone": PEER, "question": "Q", "options": options, "max_answer": max_answer}
    answer = error(api.post("/send/poll", body), 422, "VALIDATION_ERROR")
    assert answer["message"].startswith(f"{field}:"), answer
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_media_size_type_and_source_are_checked(api, settings):
    settings.API_MEDIA_MAX_BYTES = {"image": 40}
    too_big = api.post_form("/send/image", {"phone": PEER, "image": upload("a.png", PNG)})
    error(too_big, 413, "PAYLOAD_TOO_LARGE", "image")
    settings.API_MEDIA_MAX_BYTES = {}
    not_an_image = api.post_form("/send/image", {"phone": PEER, "image": upload("a.png", PDF)})
    error(not_an_image, 415, "UNSUPPORTED_MEDIA_TYPE", "image")
    error(api.post_form("/send/video", {"phone": PEER, "video": upload("v.mp4", PNG)}), 415, field="video")
    error(api.post_form("/send/audio", {"phone": PEER, "audio": upload("a.ogg", PDF)}), 415, field="audio")
    error(
        api.post_form("/send/sticker", {"phone": PEER, "sticker": upload("s.webp", PDF)}),
        415,
        field="sticker",
    )
    both = api.post_form(
        "/send/audio",
        {"phone": PEER, "audio": upload("a.ogg", OGG), "audio_url": "https://example.com/a.ogg"},
    )
    error(both, 400, "VALIDATION_ERROR", "audio")
    assert not Message.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url, status",
    [
        # well-formed, as the document says, but not fetched: 422
        ("http://127.0.0.1/a.png", 422),
        ("http://169.254.169.254/latest/meta-data", 422),
        # not an http(s) URL with a host name or IPv4 address, as the document says: 400
        ("http://[::1]/x", 400),
        ("file:///etc/passwd", 400),
    ],
)
def test_media_url_to_a_private_address_is_refused(api, url, status):
    answer = error(
        api.post_form("/send/image", {"phone": PEER, "image_url": url}), status, "VALIDATION_ERROR"
    )
    assert answer["message"].startswith("image_url:")
    assert not Message.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_media_by_url_is_fetched_and_queued(api, device, live_server, settings):
    from django.core import signing

    from messaging.api.devices import QR_SALT

    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True  # our own test server is on 127.0.0.1
    # Any PNG our server serves will do: the QR image of a device being linked.
    device.qr_code = "2@sandbox-qr"
    device.save()
    token = signing.dumps({"d": device.pk, "o": device.organization_id}, salt=QR_SALT, compress=True)
    answer = api.post_form(
        "/send/image", {"phone": PEER, "image_url": f"{live_server.url}/app/login/qr/{token}.png"}
    )
    assert answer.status_code == 200, answer.content
    message = Message.objects.get(wa_id=answer.json()["results"]["message_id"])
    assert message.media_mime == "image/png" and message.media.read().startswith(b"\x89PNG")
    missing = api.post_form(
        "/send/image", {"phone": PEER, "image_url": f"{live_server.url}/app/login/qr/bad.png"}
    )
    error(missing, 422, "VALIDATION_ERROR", "image_url")  # the URL answered 404: said so, naming the field
    settings.API_MEDIA_MAX_BYTES = {"image": 40}  # the QR PNG is larger: fetched, cut off, refused
    too_big = api.post_form(
        "/send/image", {"phone": PEER, "image_url": f"{live_server.url}/app/login/qr/{token}.png"}
    )
    error(too_big, 413, "PAYLOAD_TOO_LARGE", "image_url")


@pytest.mark.django_db
def test_device_choice(api, org, device, api_key):
    from messaging.models import Device

    second = Device.objects.create(
        organization=org, name="Second", jid="905550000001@s.whatsapp.net", status="connected"
    )
    error(api.post("/send/message", {"phone": PEER, "message": "x"}), 400, "DEVICE_ID_REQUIRED", "device_id")
    chosen = api.post(f"/send/message?device_id={second.pk}", {"phone": PEER, "message": "x"}).json()
    assert Message.objects.get(wa_id=chosen["results"]["message_id"]).device_id == second.pk
    by_header = api.post(
        "/send/message", {"phone": PEER, "message": "x"}, headers={"X-Device-Id": str(device.pk)}
    ).json()
    assert Message.objects.get(wa_id=by_header["results"]["message_id"]).device_id == device.pk
    error(
        api.post("/send/message", {"phone": PEER, "message": "x"}, headers={"X-Device-Id": "nonsense"}),
        400,
        field="device_id",
    )
    error(
        api.post("/send/message", {"phone": PEER, "message": "x"}, headers={"X-Device-Id": "999999"}),
        404,
        "DEVICE_NOT_FOUND",
    )


@pytest.mark.django_db
def test_a_device_never_linked_cannot_send(api, device):
    device.jid = ""
    device.status = "new"
    device.save()
    error(api.post("/send/message", {"phone": PEER, "message": "x"}), 401, "AUTHENTICATION_ERROR")
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_a_request_body_over_the_servers_limit_is_413(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    error(api.post("/send/message", {"phone": PEER, "message": "x" * 2000}), 413, "PAYLOAD_TOO_LARGE", "body")
    assert not Message.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_large_file_is_streamed_from_disk_never_read_whole(wa, org, api_key, settings, monkeypatch):
    """An upload bigger than FILE_UPLOAD_MAX_MEMORY_SIZE is spooled to disk by Django; the send checks its
    first bytes, moves it into the media storage and reads it again only to hand it to the backend."""
    from django.core.files.uploadedfile import TemporaryUploadedFile

    from messaging.models import SandboxMedia

    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
    wa.linked_device(org)
    data = PDF + bytes(range(256)) * 2048  # ~512 KB, eight times the in-memory limit
    uploads, whole_reads = [], []
    real_read = TemporaryUploadedFile.read

    def read(self, size=-1):  # (FileProxyMixin.read is a property; this shadows it for the test)
        uploads.append(self)
        if size is None or size < 0 or size >= len(data):
            whole_reads.append(size)
        return real_read.fget(self)(size)

    monkeypatch.setattr(TemporaryUploadedFile, "read", read)
    answer = ApiClient(api_key).post_form(
        "/send/file", {"phone": wa.peers[-1], "file": upload("big.pdf", data)}
    )
    assert answer.status_code == 200, answer.content
    assert answer.json()["results"]["status"] == "sent"
    assert uploads and not whole_reads  # the upload was a file on disk, and only its head was read
    message = Message.objects.get(wa_id=answer.json()["results"]["message_id"])
    assert message.media_size == len(data) and message.media_mime == "application/pdf"
    with message.media.open("rb") as stored:
        assert stored.read() == data
    received = {m["id"]: m for m in wa.sandbox.received_by(wa.peers[-1])}[message.wa_id]
    assert bytes(SandboxMedia.objects.get(token=received["media"]["ref"]["sandbox"]).data) == data


# ------------------------------------------------------------------------------------------ Redis gone


@pytest.mark.django_db(transaction=True)
def test_a_send_while_the_channel_layer_is_down_is_queued_and_goes_out_once(wa, org, api_key, monkeypatch):
    from messaging import runtime
    from tests.messaging.test_outbox import _channel_layer_down

    device = wa.linked_device(org)
    peer = wa.peers[0]
    monkeypatch.setattr(runtime, "local_worker", lambda channel: None)  # the web process holds no worker
    api = ApiClient(api_key)
    with monkeypatch.context() as down:
        _channel_layer_down(down)
        answer = api.post("/send/message", {"phone": peer, "message": "Redis is down"})
        assert answer.status_code == 200, answer.content
        wa_id = answer.json()["results"]["message_id"]
        assert answer.json()["results"]["status"] in ("queued", "sent")  # (sent: a heartbeat came first)
        wa.run(wa.worker.heartbeat())  # no nudge reaches the worker: its heartbeat finds the message
        wa.wait_event("message.sent", device=device, predicate=lambda d: d["id"] == wa_id)
    again = api.post("/send/message", {"phone": peer, "message": "Redis is back"}).json()
    assert again["results"]["status"] == "sent"
    assert [m["text"] for m in wa.sandbox.received_by(peer)].count("Redis is down") == 1
    assert Message.objects.filter(device=device, text="Redis is down").count() == 1


@pytest.fixture
def own_redis(settings, tmp_path):
    """A redis-server of the test's own (the shared one is never stopped), as the channel layer."""
    import shutil
    import socket
    import subprocess
    import time

    from waportal.settings import _channel_layer_host

    if not shutil.which("redis-server"):
        pytest.skip("needs redis-server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    class OwnRedis:
        def start(self):
            self.process = subprocess.Popen(
                [
                    "redis-server",
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                cwd=tmp_path,
                stdout=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 10
            while True:  # (a server that is starting: there is no event to wait for but its port)
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    return
                except OSError:
                    assert time.monotonic() < deadline, "redis-server did not start"
                    time.sleep(0.02)

        def stop(self):
            self.process.terminate()
            self.process.wait(10)

    redis = OwnRedis()
    redis.start()
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [_channel_layer_host(f"redis://127.0.0.1:{port}/0")], "capacity": 1000},
        }
    }
    yield redis
    if redis.process.poll() is None:
        redis.stop()


@pytest.mark.production
@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (the production channel layer)")
@pytest.mark.django_db(transaction=True)
def test_on_redis_a_send_during_an_outage_is_queued_sent_once_and_sends_recover(
    own_redis, wa, org, api_key, monkeypatch
):
    from messaging import runtime

    device = wa.linked_device(org)
    peer = wa.peers[1]
    monkeypatch.setattr(runtime, "local_worker", lambda channel: None)  # the web process holds no worker
    api = ApiClient(api_key)
    assert (
        api.post("/send/message", {"phone": peer, "message": "before"}).json()["results"]["status"] == "sent"
    )

    own_redis.stop()
    answer = api.post("/send/message", {"phone": peer, "message": "during"})
    assert answer.status_code == 200, answer.content
    wa_id = answer.json()["results"]["message_id"]
    assert answer.json()["results"]["status"] in ("queued", "sent")  # (sent: a heartbeat came first)
    wa.run(wa.worker.heartbeat())  # Redis or not, the heartbeat sends what is queued
    wa.wait_event("message.sent", device=device, predicate=lambda d: d["id"] == wa_id)

    own_redis.start()  # the pooled connections to the old server are dead: they are replaced, not a 500
    after = api.post("/send/message", {"phone": peer, "message": "after"})
    assert after.status_code == 200, after.content
    assert after.json()["results"]["status"] == "sent"
    texts = [m["text"] for m in wa.sandbox.received_by(peer)]
    assert [texts.count(t) for t in ("before", "during", "after")] == [1, 1, 1]
