"""The services the dashboard and the API share: tenant check, validation naming the field, gateway then DB + audit."""

from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.http import Http404

from accounts.models import AuditEvent
from groups import services as groups
from messaging.models import Chat, Device, DeviceStatus, Message, MessageStatus
from messaging.services import messages, profile
from messaging.whatsapp import protocol

PEER = "905551112233@s.whatsapp.net"


@pytest.fixture
def device(org):
    return Device.objects.create(
        organization=org, name="Phone", jid="905550000000@s.whatsapp.net", status=DeviceStatus.CONNECTED
    )


@pytest.fixture
def stored(org, device):
    chat = Chat.objects.create(organization=org, device=device, jid=PEER, unread_count=1)
    return Message.objects.create(
        organization=org,
        device=device,
        chat=chat,
        wa_id="3EB0AAA",
        from_me=False,
        sender_jid=PEER,
        text="hi",
        status=MessageStatus.RECEIVED,
    )


@pytest.fixture
def gw():
    with mock.patch("messaging.gateway.call") as call:
        yield call


def test_revoke_calls_gateway_then_marks_and_audits(org, device, gw, owner):
    chat = Chat.objects.create(organization=org, device=device, jid=PEER)
    mine = Message.objects.create(
        organization=org, device=device, chat=chat, wa_id="3EB0MINE", from_me=True, sender_jid=device.jid
    )
    result = messages.revoke_message(
        organization=org, device=device, chat="+90 555 111 22 33", message_id="3EB0MINE", actor=owner
    )
    gw.assert_called_once_with(device, "revoke", chat=PEER, message_id="3EB0MINE", sender=device.jid)
    assert result.pk == mine.pk
    mine.refresh_from_db()
    assert mine.revoked_at is not None
    assert AuditEvent.objects.filter(organization=org, action="message.revoke", actor=owner).exists()


def test_react_edit_read_star_delete_update_our_copy(org, device, stored, gw):
    messages.react_message(organization=org, device=device, chat=PEER, message_id="3EB0AAA", emoji="👍")
    messages.mark_read(organization=org, device=device, chat=PEER, message_id="3EB0AAA")
    messages.star_message(organization=org, device=device, chat=PEER, message_id="3EB0AAA", starred=True)
    messages.delete_message_for_me(organization=org, device=device, chat=PEER, message_id="3EB0AAA")
    stored.refresh_from_db()
    assert stored.reactions == {device.jid: "👍"}
    assert stored.read_by_me_at and stored.starred and stored.deleted_for_me_at
    assert stored.chat.unread_count == 0
    assert gw.call_args_list[0].kwargs["sender"] == PEER
    with pytest.raises(ValidationError) as err:
        messages.edit_message(organization=org, device=device, chat=PEER, message_id="3EB0AAA", text="x")
    assert "message_id" in err.value.message_dict


def test_another_organizations_device_is_404_and_nothing_is_called(other_org, device, gw):
    with pytest.raises(Http404):
        messages.revoke_message(organization=other_org, device=device, chat=PEER, message_id="X")
    with pytest.raises(Http404):
        groups.leave_group(organization=other_org, device=device, group_id="123@g.us")
    with pytest.raises(Http404):
        profile.set_push_name(organization=other_org, device=device, name="x")
    gw.assert_not_called()


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda o, d: messages.revoke_message(organization=o, device=d, chat="nope", message_id="X"), "chat"),
        (
            lambda o, d: messages.react_message(
                organization=o, device=d, chat=PEER, message_id="", emoji="x"
            ),
            "message_id",
        ),
        (
            lambda o, d: messages.edit_message(organization=o, device=d, chat=PEER, message_id="X", text=" "),
            "text",
        ),
        (lambda o, d: profile.set_push_name(organization=o, device=d, name=""), "push_name"),
        (lambda o, d: profile.set_presence(organization=o, device=d, presence="busy"), "type"),
        (
            lambda o, d: profile.send_chat_presence(organization=o, device=d, chat=PEER, action="dance"),
            "action",
        ),
        (
            lambda o, d: profile.unfollow_newsletter(organization=o, device=d, newsletter=PEER),
            "newsletter_id",
        ),
        (
            lambda o, d: groups.create_group(
                organization=o, device=d, name="", participants=["905551112233"]
            ),
            "name",
        ),
        (
            lambda o, d: groups.create_group(organization=o, device=d, name="G", participants=["abc"]),
            "participants",
        ),
        (lambda o, d: groups.leave_group(organization=o, device=d, group_id=PEER), "group_id"),
        (
            lambda o, d: groups.join_group_with_link(organization=o, device=d, link="https://evil.example/x"),
            "link",
        ),
    ],
)
def test_bad_input_names_the_field(org, device, gw, call, field):
    with pytest.raises(ValidationError) as err:
        call(org, device)
    assert field in err.value.message_dict
    gw.assert_not_called()


def test_group_services_normalise_and_audit(org, device, gw):
    gw.return_value = protocol.GroupInfo(jid="120363000@g.us", name="Team")
    info = groups.create_group(
        organization=org, device=device, name="Team", participants=["+90 555 111 22 33", PEER]
    )
    gw.assert_called_once_with(device, "create_group", name="Team", participants=[PEER])
    assert info.jid == "120363000@g.us"
    assert Chat.objects.filter(device=device, jid="120363000@g.us", is_group=True).exists()
    gw.return_value = "ABCDEF"
    assert (
        groups.group_invite_link(organization=org, device=device, group_id="120363000")
        == "https://chat.whatsapp.com/ABCDEF"
    )
    gw.return_value = "120363000@g.us"
    groups.join_group_with_link(organization=org, device=device, link="https://chat.whatsapp.com/INVITE_LINK")
    assert gw.call_args.kwargs == {"code": "INVITE_LINK"}
    assert AuditEvent.objects.filter(organization=org, action__in=["group.create", "group.join"]).count() == 2


def test_whatsapp_refusal_propagates_and_nothing_is_recorded(org, device, stored, gw):
    gw.side_effect = protocol.Forbidden("not an admin")
    with pytest.raises(protocol.WhatsAppError) as err:
        messages.star_message(organization=org, device=device, chat=PEER, message_id="3EB0AAA")
    assert err.value.code == protocol.ErrorCode.FORBIDDEN
    stored.refresh_from_db()
    assert not stored.starred
    assert not AuditEvent.objects.filter(action="message.star").exists()
