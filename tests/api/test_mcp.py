"""The MCP server at /mcp, driven by the `mcp` SDK's own client over streamable HTTP, in process."""

import asyncio

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from messaging.models import Message
from tests.conftest import make_api_key

WRITE_TOOLS = {
    "send_text",
    "send_link",
    "send_location",
    "send_contact",
    "send_poll",
    "send_media",
    "create_group",
    "update_group_participants",
    "set_group_name",
    "set_group_topic",
    "leave_group",
}
READ_TOOLS = {
    "list_devices",
    "list_chats",
    "read_conversation",
    "search_messages",
    "list_groups",
    "group_info",
    "check_number",
}


def http_client(headers: dict) -> httpx2.AsyncClient:
    from waportal.asgi import application

    return httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=application), base_url="http://127.0.0.1", headers=headers
    )


def session(key: str, *, style: str = "bearer") -> Client:
    headers = {"Authorization": f"Bearer {key}"} if style == "bearer" else {"X-Api-Key": key}
    return Client(streamable_http_client("http://127.0.0.1/mcp", http_client=http_client(headers)))


async def call(key: str, name: str, arguments: dict, **kwargs):
    async with session(key, **kwargs) as client:
        return await client.call_tool(name, arguments)


def text_of(result) -> str:
    return " ".join(getattr(part, "text", "") for part in result.content)


@pytest.mark.django_db(transaction=True)
def test_a_full_key_gets_every_tool_a_read_only_key_only_the_reading_ones(org, owner, api_key):
    read_only = make_api_key(org, access="read", created_by=owner)

    async def scenario():
        async with session(api_key) as client:
            full = {t.name for t in (await client.list_tools()).tools}
        async with session(read_only, style="header") as client:
            reading = {t.name for t in (await client.list_tools()).tools}
            refused = await client.call_tool("send_text", {"phone": "905551112233", "message": "hi"})
        return full, reading, refused

    full, reading, refused = asyncio.run(scenario())
    assert full == READ_TOOLS | WRITE_TOOLS
    assert reading == READ_TOOLS
    assert refused.is_error and "read-only" in text_of(refused)
    assert not Message.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_an_agent_sends_lists_chats_reads_and_searches_on_a_linked_number(wa, org, api_key):
    device = wa.linked_device(org)
    peer = wa.peers[0]

    async def scenario():
        async with session(api_key) as client:
            sent = await client.call_tool("send_text", {"phone": f"+{peer}", "message": "Merhaba ajan"})
            chats = await client.call_tool("list_chats", {"device_id": device.pk})
            conversation = await client.call_tool("read_conversation", {"chat": peer})
            found = await client.call_tool("search_messages", {"query": "ajan"})
            checked = await client.call_tool("check_number", {"phone": peer})
            bad = await client.call_tool("send_text", {"phone": "not a number", "message": "x"})
            missing = await client.call_tool("send_text", {"phone": peer})
        return sent, chats, conversation, found, checked, bad, missing

    sent, chats, conversation, found, checked, bad, missing = asyncio.run(scenario())
    assert not sent.is_error, text_of(sent)
    wa_id = sent.structured_content["message_id"]
    assert sent.structured_content["status"] == "sent"
    stored = Message.objects.get(wa_id=wa_id, device=device)
    assert stored.text == "Merhaba ajan" and stored.from_me
    assert any(m["id"] == wa_id for m in wa.sandbox.received_by(peer))

    rows = chats.structured_content["data"]
    assert [r["jid"] for r in rows] == [f"{peer}@s.whatsapp.net"]
    assert rows[0]["last_message"] == "Merhaba ajan"
    messages = conversation.structured_content["data"]
    assert [m["id"] for m in messages] == [wa_id]
    assert [m["id"] for m in found.structured_content["data"]] == [wa_id]
    assert checked.structured_content["is_on_whatsapp"] is True

    # every input is validated, and the error names the field
    assert bad.is_error and text_of(bad).startswith("phone: 'not a number' is not a phone number")
    assert missing.is_error and text_of(missing) == "message: is required"


@pytest.mark.django_db(transaction=True)
def test_another_organizations_device_is_not_found(org, api_key, other_org, outsider):
    from messaging.models import Device, DeviceStatus

    theirs = Device.objects.create(
        organization=other_org,
        name="Theirs",
        jid="905559999999@s.whatsapp.net",
        status=DeviceStatus.CONNECTED,
    )

    async def scenario():
        async with session(api_key) as client:
            listed = await client.call_tool("list_chats", {"device_id": theirs.pk})
            by_number = await client.call_tool(
                "read_conversation", {"chat": "905551112233", "device_id": "905559999999"}
            )
            sent = await client.call_tool(
                "send_text", {"phone": "905551112233", "message": "x", "device_id": theirs.pk}
            )
            devices = await client.call_tool("list_devices", {})
        return listed, by_number, sent, devices

    listed, by_number, sent, devices = asyncio.run(scenario())
    for result in (listed, by_number, sent):
        assert result.is_error and "not found" in text_of(result), text_of(result)
    assert devices.structured_content["devices"] == []
    assert not Message.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_no_key_or_a_wrong_or_revoked_key_is_401(org, api_key):
    from django.utils import timezone

    from accounts.models import ApiKey

    revoked = make_api_key(org)
    ApiKey.objects.filter(pk=ApiKey.objects.latest("pk").pk).update(revoked_at=timezone.now())
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream"}

    async def scenario():
        answers = []
        for extra in ({}, {"Authorization": "Bearer wrong"}, {"X-Api-Key": revoked}):
            async with http_client({**headers, **extra}) as http:
                answers.append(await http.post("/mcp", json=body))
        return answers

    for answer in asyncio.run(scenario()):
        assert answer.status_code == 401, answer.text
        assert "API key" in answer.json()["message"]


@pytest.mark.django_db(transaction=True)
def test_an_agent_sends_a_picture_and_manages_a_group(wa, org, api_key):
    import base64

    from accounts.models import AuditEvent
    from tests.api.endpoints import PNG

    device = wa.linked_device(org)
    first, second = wa.peers[0], wa.peers[1]

    async def scenario():
        async with session(api_key) as client:
            picture = await client.call_tool(
                "send_media",
                {
                    "phone": first,
                    "kind": "image",
                    "data_base64": base64.b64encode(PNG).decode(),
                    "caption": "Bak",
                },
            )
            not_base64 = await client.call_tool(
                "send_media", {"phone": first, "kind": "image", "data_base64": "%%"}
            )
            group = await client.call_tool("create_group", {"title": "Ajanlar", "participants": [first]})
            added = await client.call_tool(
                "update_group_participants",
                {"group_id": group.structured_content["group_id"], "participants": [second], "action": "add"},
            )
            info = await client.call_tool("group_info", {"group_id": group.structured_content["group_id"]})
        return picture, not_base64, group, added, info

    picture, not_base64, group, added, info = asyncio.run(scenario())
    assert not picture.is_error, text_of(picture)
    received = {m["id"]: m for m in wa.sandbox.received_by(first)}[picture.structured_content["message_id"]]
    assert received["kind"] == "image" and received["caption"] == "Bak"
    assert not_base64.is_error and "data_base64" in text_of(not_base64)
    assert not group.is_error, text_of(group)
    assert [r["status"] for r in added.structured_content["results"]] == ["success"]
    members = {p["jid"] for p in info.structured_content["participants"]}
    assert {f"{first}@s.whatsapp.net", f"{second}@s.whatsapp.net"} <= members
    # audited under the key, as the REST API's calls are
    assert set(AuditEvent.objects.filter(api_key__isnull=False).values_list("action", flat=True)) >= {
        "group.create",
        "group.participants.add",
    }
    assert device.messages.filter(kind="image", from_me=True).count() == 1
