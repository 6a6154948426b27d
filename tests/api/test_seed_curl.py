"""The curl examples of the user's seed text, run as written against our server, with only the base URL and the
credentials changed (and the placeholders such as 905xxxxxxxxx, GROUP_ID or /path/to/your/image.jpg filled in
with real sandbox numbers, groups and files). Every one must answer 2xx with code SUCCESS.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from messaging.models import Device
from tests.api.endpoints import MP4, OGG, PDF, PNG
from tests.conftest import make_api_key

# A copy of the user's text (shared/spec/seed-api-endpoints.tr.txt), kept beside the test that runs it.
SEED = Path(__file__).with_name("seed-api-endpoints.tr.txt")
SEED_BASE_URL = "http://localhost:3000"


def seed_commands(text: str) -> list[str]:
    """The curl commands of the seed text, each joined from its backslash-continued lines, in order."""
    commands: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        if not current:
            start = line.find("curl -X")
            if start < 0:
                continue
            line = line[start:]
        stripped = line.rstrip()
        if stripped.endswith("\\"):
            current.append(stripped[:-1].strip())
            continue
        current.append(stripped.strip())
        commands.append(" ".join(current))
        current = []
    return commands


def method_and_path(command: str) -> tuple[str, str]:
    match = re.search(r"curl -X (\w+) \"?" + re.escape(SEED_BASE_URL) + r"([^\"?\s]*)", command)
    assert match, command
    return match[1], match[2]


@pytest.fixture
def seed_text():
    if not SEED.exists():
        pytest.skip(f"the seed text is not at {SEED}")
    return SEED.read_text()


def test_the_seed_has_the_contracts_curl_examples(seed_text):
    commands = seed_commands(seed_text)
    assert len(commands) == 42
    assert method_and_path(commands[0]) == ("GET", "/app/login")
    assert method_and_path(commands[-1]) == ("POST", "/newsletter/unfollow")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.django_db(transaction=True)
def test_seed_curl_examples_run_as_written(wa, org, owner, live_server, tmp_path, seed_text):
    key = make_api_key(org, created_by=owner)
    sandbox = wa.sandbox
    summary = sandbox.network_summary()
    x, y = sandbox.peer_phones("echo")[:2]
    z = sandbox.peer_phones("react")[0]
    own_phone = sandbox.fresh_phone()
    files = {"image.jpg": PNG, "audio.ogg": OGG, "video.mp4": MP4, "document.pdf": PDF}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    state: dict = {}

    def device() -> Device:
        return Device.objects.get(organization=org)

    def link_again():
        from messaging.services import devices

        linking = devices.start_linking(organization=org, device=device())
        qr_code = linking.qr_code or wa.wait_event("device.qr", device=linking)["qr_code"]
        sandbox.phone_scan(qr_code=qr_code, phone=own_phone)
        wa.wait_event("device.connected", device=linking)

    def fresh_sent_message() -> str:
        from messaging.services.outbox import queue_message

        message = queue_message(organization=org, device=device(), outgoing={"to": x, "text": "seed"})
        return message.wa_id

    def fresh_incoming_message() -> str:
        message_id = sandbox.peer_send(from_phone=x, to_jid=device().jid, text="okundu mu?")
        wa.wait_event("message", device=device(), predicate=lambda d: d["id"] == message_id)
        return message_id

    def group_with_request_from_z():
        group = state["group"]
        sandbox.set_join_approval(group=group)
        if f"{z}@s.whatsapp.net" in sandbox.group_state(group)["participants"]:
            from groups.services import update_participants

            update_participants(
                organization=org, device=device(), group_id=group, participants=[z], action="remove"
            )
        sandbox.peer_join_request(from_phone=z, group=group)

    def fill(command: str, method: str, path: str) -> str:
        """Our base URL and key; the seed's placeholders made real; its one shell-quoting slip mended."""
        command = command.replace(SEED_BASE_URL, live_server.url)
        command = command.replace("curl -X", f'curl -sS -u "api:{key}" -X', 1)
        # The seed writes 'Google\'a ...' inside single quotes, which no shell reads as meant: quote it properly.
        command = command.replace("\\'", "'\"'\"'")
        for name in files:
            command = command.replace(f"/path/to/your/{name}", str(tmp_path / name))
        if path.startswith("/message/"):
            message_id = fresh_incoming_message() if path.endswith("/read") else fresh_sent_message()
            command = re.sub(r"MESSAGE_(ID|id)", message_id, command)
        command = command.replace("GROUP_ID@g.us", state.get("group", ""))
        if "INVITE_LINK" in command:
            joinable = next(g for g in summary["groups"] if not g["join_approval"])
            command = command.replace("https://chat.whatsapp.com/INVITE_LINK", joinable["invite_link"])
        command = command.replace("NEWSLETTER_ID@newsletter", summary["newsletters"][0]["jid"])
        # the number being linked is the device's own; elsewhere 905x/y/z are simulated peers
        command = command.replace("905xxxxxxxxx", own_phone if path == "/app/login-with-code" else x)
        return command.replace("905yyyyyyyyy", y).replace("905zzzzzzzzz", z)

    # What a user does between the seed's steps, on the phone or elsewhere (before running the step).
    before = {
        "/app/reconnect": link_again,  # after /app/logout the number is linked again
        "/newsletter/unfollow": lambda: sandbox.follow_newsletter(
            phone=device().phone, jid=summary["newsletters"][0]["jid"]
        ),
        "/group/participant-requests": group_with_request_from_z,
        "/group/participant-requests/reject": group_with_request_from_z,
    }
    after = {
        "/app/login-with-code": lambda answer: (
            sandbox.phone_enter_code(phone=own_phone, code=answer["results"]["pair_code"]),
            wa.wait_event("device.connected", device=device()),
        ),
        "/group": lambda answer: state.update(group=answer["results"]["group_id"]),
    }

    ran = []
    for raw in seed_commands(seed_text):
        method, path = method_and_path(raw)
        if path in before:
            before[path]()
        command = fill(raw, method, path)
        result = subprocess.run(
            ["bash", "-c", command + ' -w "\\n%{http_code}"'], capture_output=True, text=True, timeout=60
        )
        body, _, status = result.stdout.rpartition("\n")
        assert result.returncode == 0, (raw, result.stderr)
        assert status.startswith("2"), (raw, status, body)
        answer = json.loads(body)
        assert answer["code"] == "SUCCESS", (raw, answer)
        if path in after:
            after[path](answer)
        ran.append(f"{method} {path}")
    assert len(ran) == len(seed_commands(seed_text)) == 42
    assert device().is_connected
