"""Labels and chat organisation in the dashboard: the Labels page, the conversation's organisation bar (pin,
archive, labels, assigned member), and the inbox that shows and filters by them. WhatsApp is stood in for by a
recorder of the gateway calls (the sandbox runs them in tests/pages/test_pages_live.py style elsewhere)."""

import pytest
from django.urls import reverse

from accounts.models import AuditEvent
from messaging.models import Chat, Label
from tests.conftest import add_member, make_user
from tests.pages.conftest import make_chat

pytestmark = pytest.mark.django_db


@pytest.fixture
def whatsapp(monkeypatch):
    """The gateway calls the services made, as (operation, arguments); each answers as WhatsApp agreeing."""
    calls = []
    monkeypatch.setattr("messaging.gateway.call", lambda device, op, **kw: calls.append((op, kw)))
    return calls


def labels_url(device):
    return reverse("messaging:labels", args=[device.pk])


def organise(client, device, chat, action, **data):
    url = reverse("messaging:chat_organise", args=[device.pk, chat.pk, action])
    return client.post(url, data, HTTP_HX_REQUEST="true")


def inbox(client, device, **params):
    return client.get(reverse("messaging:inbox", args=[device.pk]), params).content.decode()


def make_label(device, label_id="1", name="Yeni müşteri", color=0):
    return Label.objects.create(
        organization=device.organization, device=device, label_id=label_id, name=name, color=color
    )


# ------------------------------------------------------------------------------------------ the Labels page


def test_an_operator_makes_renames_recolours_and_deletes_labels(operator_client, device, whatsapp):
    page = operator_client.get(labels_url(device)).content.decode()
    assert "No labels yet." in page and 'name="color" value="19"' in page  # WhatsApp's 20 colours

    response = operator_client.post(
        reverse("messaging:label_create", args=[device.pk]), {"name": "VIP", "color": 3}
    )
    assert response.status_code == 302
    operator_client.post(reverse("messaging:label_create", args=[device.pk]), {"name": "Ödeme", "color": 5})
    vip, payment = Label.objects.filter(device=device).order_by("pk")
    assert (vip.label_id, vip.name, vip.color) == ("1", "VIP", 3)
    assert payment.label_id == "2"  # numbered as WhatsApp numbers them
    assert whatsapp[0] == ("edit_label", {"label_id": "1", "name": "VIP", "color": 3, "deleted": False})

    operator_client.post(
        reverse("messaging:label_edit", args=[device.pk, vip.pk]), {"name": "Gold", "color": 7}
    )
    vip.refresh_from_db()
    assert (vip.name, vip.color) == ("Gold", 7)
    page = operator_client.get(labels_url(device)).content.decode()
    assert "label-color-7" in page and "Gold" in page

    operator_client.post(reverse("messaging:label_delete", args=[device.pk, vip.pk]))
    assert list(Label.objects.filter(device=device)) == [payment]
    assert whatsapp[-1][0] == "edit_label" and whatsapp[-1][1]["deleted"] is True
    actions = set(
        AuditEvent.objects.filter(organization=device.organization).values_list("action", flat=True)
    )
    assert {"label.create", "label.update", "label.delete"} <= actions


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": "", "color": 1}, "name"),
        ({"name": "x" * 101, "color": 1}, "name"),
        ({"name": "VIP", "color": 20}, "color"),
        ({"name": "VIP", "color": "red"}, "color"),
        ({"name": "VIP"}, "color"),
        ({"name": "vip", "color": 1}, "name"),  # the number already has "VIP"
    ],
)
def test_label_errors_name_the_field_and_keep_the_input(operator_client, device, whatsapp, data, field):
    make_label(device, name="VIP")
    response = operator_client.post(reverse("messaging:label_create", args=[device.pk]), data)
    assert response.status_code == 400
    body = response.content.decode()
    assert f'data-field="{field}"' in body
    assert Label.objects.filter(device=device).count() == 1
    if data["name"]:
        assert f'value="{data["name"]}"' in body
    assert whatsapp == []  # refused before WhatsApp is asked


def test_a_viewer_sees_labels_but_cannot_change_anything(viewer_client, device, whatsapp):
    label = make_label(device)
    chat = make_chat(device)
    page = viewer_client.get(labels_url(device)).content.decode()
    assert "Yeni müşteri" in page and 'name="name"' not in page
    conversation = viewer_client.get(
        reverse("messaging:conversation", args=[device.pk, chat.pk])
    ).content.decode()
    assert "chat-organise" not in conversation
    posts = [
        reverse("messaging:label_create", args=[device.pk]),
        reverse("messaging:label_edit", args=[device.pk, label.pk]),
        reverse("messaging:label_delete", args=[device.pk, label.pk]),
        *(
            reverse("messaging:chat_organise", args=[device.pk, chat.pk, action])
            for action in ("pin", "archive", "label", "assign")
        ),
    ]
    for url in posts:
        assert viewer_client.post(url, {"name": "x", "color": 1, "label": label.pk}).status_code == 403
    assert whatsapp == []


def test_another_organizations_user_gets_404_on_every_new_view(outsider_client, device, whatsapp):
    label = make_label(device)
    chat = make_chat(device)
    assert outsider_client.get(labels_url(device)).status_code == 404
    for url in [
        reverse("messaging:label_create", args=[device.pk]),
        reverse("messaging:label_edit", args=[device.pk, label.pk]),
        reverse("messaging:label_delete", args=[device.pk, label.pk]),
        *(
            reverse("messaging:chat_organise", args=[device.pk, chat.pk, action])
            for action in ("pin", "unpin", "archive", "unarchive", "label", "unlabel", "assign")
        ),
    ]:
        assert outsider_client.post(url, {"name": "x", "color": 1, "label": label.pk}).status_code == 404
    assert whatsapp == [] and Label.objects.get(pk=label.pk).name == "Yeni müşteri"


def test_a_label_or_chat_of_another_number_is_404(owner_client, device, other_device, whatsapp):
    theirs = make_label(other_device)
    their_chat = make_chat(other_device)
    chat = make_chat(device)
    assert (
        owner_client.post(
            reverse("messaging:label_edit", args=[device.pk, theirs.pk]), {"name": "x", "color": 1}
        ).status_code
        == 404
    )
    assert (
        owner_client.post(reverse("messaging:label_delete", args=[device.pk, theirs.pk])).status_code == 404
    )
    assert organise(owner_client, device, chat, "label", label=theirs.pk).status_code == 404
    assert organise(owner_client, device, their_chat, "pin").status_code == 404
    assert not chat.labels.exists()


# ------------------------------------------------------------------------------------------ one chat, the inbox


def test_pin_archive_label_and_assign_from_the_conversation_show_in_the_inbox(
    owner_client, owner, org, device, whatsapp
):
    label = make_label(device, name="Kargo", color=4)
    older = make_chat(device, name="Ayşe Yılmaz")
    newer = make_chat(device, name="Burak")
    archived = make_chat(device, name="Eski")

    answer = organise(owner_client, device, older, "pin")
    assert answer.status_code == 200
    body = answer.content.decode()
    assert f'id="chat-{older.pk}-state"' in body and "Unpin" in body
    assert f'id="chat-list-{device.pk}-refresh"' in body  # the list beside it re-reads itself
    organise(owner_client, device, archived, "archive")
    body = organise(owner_client, device, older, "label", label=label.pk).content.decode()
    assert 'aria-pressed="true"' in body and "label-color-4" in body
    organise(owner_client, device, newer, "assign", assignee=owner.pk)
    assert [op for op, _args in whatsapp] == ["pin_chat", "archive_chat", "label_chat"]  # assigning is ours

    listed = inbox(owner_client, device)
    # Pinned first (with its mark) although older; archived hidden; label chip and assignee on the rows.
    assert listed.index(f'id="chat-{older.pk}-row"') < listed.index(f'id="chat-{newer.pk}-row"')
    older_row = listed.split(f'id="chat-{older.pk}-row"')[1].split("</a>")[0]
    assert "pin-mark" in older_row and "Kargo" in older_row and ">AY<" in older_row  # initials avatar
    newer_row = listed.split(f'id="chat-{newer.pk}-row"')[1].split("</a>")[0]
    assert owner.email in newer_row
    assert f'id="chat-{archived.pk}-row"' not in listed

    only_archived = inbox(owner_client, device, filter="archived")
    assert (
        f'id="chat-{archived.pk}-row"' in only_archived and f'id="chat-{older.pk}-row"' not in only_archived
    )
    by_label = inbox(owner_client, device, filter=f"label-{label.pk}")
    assert f'id="chat-{older.pk}-row"' in by_label and f'id="chat-{newer.pk}-row"' not in by_label
    mine = inbox(owner_client, device, filter="mine")
    assert f'id="chat-{newer.pk}-row"' in mine and f'id="chat-{older.pk}-row"' not in mine

    organise(owner_client, device, older, "unlabel", label=label.pk)
    organise(owner_client, device, older, "unpin")
    organise(owner_client, device, archived, "unarchive")
    organise(owner_client, device, newer, "assign", assignee="")
    older.refresh_from_db(), newer.refresh_from_db(), archived.refresh_from_db()
    assert (
        not older.pinned and not older.labels.exists() and not archived.archived and newer.assigned_to is None
    )
    actions = list(AuditEvent.objects.filter(organization=org).values_list("action", flat=True))
    for action in ("chat.pin", "chat.archive", "chat.label", "chat.assign", "chat.unassign", "chat.unpin"):
        assert action in actions


def test_the_assignee_must_be_a_member_of_the_organization(owner_client, device, other_org):
    chat = make_chat(device)
    stranger = add_member(other_org, user=make_user())
    for value in (stranger.pk, "someone@example.com", "999999"):
        body = organise(owner_client, device, chat, "assign", assignee=value).content.decode()
        assert "assignee: is not a member of this organization." in body
    chat.refresh_from_db()
    assert chat.assigned_to is None


def test_a_viewer_can_be_assigned_and_filters_their_own_chats(owner_client, viewer, viewer_client, device):
    chat = make_chat(device, name="Destek")
    organise(owner_client, device, chat, "assign", assignee=viewer.pk)
    assert Chat.objects.get(pk=chat.pk).assigned_to == viewer
    assert f'id="chat-{chat.pk}-row"' in inbox(viewer_client, device, filter="mine")
    assert f'id="chat-{chat.pk}-row"' not in inbox(owner_client, device, filter="mine")


def test_an_unknown_filter_shows_all_chats(owner_client, device, other_device):
    chat = make_chat(device)
    theirs = make_label(other_device)
    for value in ("nonsense", f"label-{theirs.pk}", "label-x"):
        assert f'id="chat-{chat.pk}-row"' in inbox(owner_client, device, filter=value)


def test_inbox_queries_stay_the_same_with_labels_and_assignees(
    owner_client, owner, device, django_assert_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    labels = [make_label(device, label_id=str(i), name=f"L{i}", color=i) for i in range(1, 4)]

    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert owner_client.get(reverse("messaging:inbox", args=[device.pk])).status_code == 200
        return len(ctx.captured_queries)

    def more_chats(n):
        for i in range(n):
            chat = make_chat(device, name=f"c{i}")
            chat.labels.set(labels[: 1 + i % 3])
            Chat.objects.filter(pk=chat.pk).update(assigned_to=owner, pinned=i % 5 == 0)

    more_chats(3)
    count()  # warm the session
    few = count()
    more_chats(40)
    assert count() == few


def test_keyset_pages_with_pinned_chats_repeat_and_miss_nothing(owner_client, device):
    from datetime import timedelta

    from django.utils import timezone

    from messaging.views.inbox import CHATS_PER_PAGE, chats_page

    start = timezone.now() - timedelta(days=1)
    chats = [
        make_chat(device, name=f"c{i}", when=start + timedelta(minutes=i))
        for i in range(CHATS_PER_PAGE * 2 + 5)
    ]
    pinned = {chats[0].pk, chats[7].pk, chats[40].pk}  # old and new ones
    Chat.objects.filter(pk__in=pinned).update(pinned=True)
    seen, after = [], ""
    while True:
        rows, after = chats_page(device, after=after)
        seen.extend(row.pk for row in rows)
        if not after:
            break
    assert len(seen) == len(set(seen)) == len(chats)
    assert set(seen[:3]) == pinned
    rest = [c.pk for c in sorted(chats, key=lambda c: c.last_message_at, reverse=True) if c.pk not in pinned]
    assert seen[3:] == rest
    # An old cursor (before pins existed) still reads on, past the pinned chats.
    from messaging.views.inbox import encode_cursor

    middle = chats[30]
    rows, _after = chats_page(device, after=encode_cursor(middle.last_message_at, middle.pk))
    assert rows[0].pk == chats[29].pk


def test_the_labels_page_and_its_errors_in_turkish(owner_client, device, whatsapp):
    owner_client.post(reverse("set_language"), {"language": "tr"})
    chat = make_chat(device)
    page = owner_client.get(labels_url(device)).content.decode()
    assert "Yeni etiket" in page and "Renk 20" in page
    refused = owner_client.post(
        reverse("messaging:label_create", args=[device.pk]), {"name": "VIP", "color": 30}
    )
    assert "20 etiket renginden biri olmalı." in refused.content.decode()
    body = organise(owner_client, device, chat, "assign", assignee="x@example.com").content.decode()
    assert "bu organizasyonun üyesi değil." in body
    assert "Bana atananlar" in inbox(owner_client, device)
