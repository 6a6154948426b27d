"""Group pages against a session worker on the sandbox: what a partial success says, and what a number that is
not an admin of the group is offered (and refused) (issue 16)."""

from html import unescape

import pytest
from django.urls import reverse

from messaging.models import SandboxGroup
from messaging.templatetags.dashboard import phone
from tests.conftest import add_member, client_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def op(org):
    return client_for(add_member(org, "operator"))


def _flash(body: str) -> tuple[str, str]:
    """The last flash's style and its text."""
    start = body.rindex('class="flash-')
    style = body[start + len('class="flash-') : body.index('"', start + len('class="flash-'))]
    text = body[body.index(">", start) + 1 : body.index("</p>", start)]
    return style, unescape(text)


def test_a_partial_add_says_who_was_added_and_who_was_not_and_why(wa, org, op):
    device = wa.linked_device(org)
    a, b, c = wa.peers[0], wa.peers[1], wa.peers[2]
    created = op.post(reverse("groups:create", args=[device.pk]), {"name": "Mixed", "participants": a})
    group = created["Location"].rstrip("/").split("/")[-1]
    nobody = wa.sandbox.unregistered_phone()
    url = reverse("groups:participants", args=[device.pk, group])

    response = op.post(url, {"action": "add", "participants": f"{b}, {nobody}, {a}"}, follow=True)
    style, text = _flash(response.content.decode())
    assert style == "warning"  # neither a plain success nor a failure
    added, not_added = text.split(" Not added: ")
    assert added == f"Added: {phone(b)}."
    assert (
        f"{phone(nobody)} (not on WhatsApp)" in not_added
        and f"{phone(a)} (already a participant)" in not_added
    )

    response = op.post(
        url, {"action": "add", "participants": f"{c}, {nobody}"}, follow=True, HTTP_ACCEPT_LANGUAGE="tr"
    )
    style, text = _flash(response.content.decode())
    assert style == "warning"
    assert text.startswith("Eklendi: ") and "Eklenmedi: " in text and "(WhatsApp'ta değil)" in text

    everyone_refused = op.post(url, {"action": "add", "participants": nobody}, follow=True)
    style, text = _flash(everyone_refused.content.decode())
    assert style == "error" and text.startswith("Not added: ") and "not on WhatsApp" in text


def test_a_member_that_is_not_an_admin_is_not_offered_admin_controls_and_is_refused_them(wa, org, op):
    device = wa.linked_device(org)
    a = wa.peers[0]
    group = wa.sandbox.peer_create_group(owner_phone=a, name="Theirs to run", participants=[device.phone])
    SandboxGroup.objects.filter(jid=group).update(locked=True)  # only admins edit its info
    detail = reverse("groups:detail", args=[device.pk, group])

    page = op.get(detail).content.decode()
    assert "Theirs to run" in page and "data-not-admin" in page
    for control in (
        reverse("groups:settings", args=[device.pk, group, "name"]),
        reverse("groups:settings", args=[device.pk, group, "topic"]),
        reverse("groups:settings", args=[device.pk, group, "locked"]),
        reverse("groups:settings", args=[device.pk, group, "announce"]),
        reverse("groups:photo", args=[device.pk, group]),
        reverse("groups:invite", args=[device.pk, group]),
        reverse("groups:participants", args=[device.pk, group]),
    ):
        assert f'action="{control}"' not in page, control
    assert "data-promote" not in page
    assert reverse("groups:leave", args=[device.pk, group]) in page  # a member may still leave

    # The server refuses all the same, saying why.
    for url, data in (
        (reverse("groups:settings", args=[device.pk, group, "locked"]), {"value": "off"}),
        (reverse("groups:participants", args=[device.pk, group]), {"action": "promote", "participants": a}),
        (reverse("groups:settings", args=[device.pk, group, "name"]), {"name": "Mine now"}),
    ):
        style, text = _flash(op.post(url, data, follow=True).content.decode())
        assert style == "error" and text.startswith("This number is not an admin of this group"), text
    assert SandboxGroup.objects.get(jid=group).name == "Theirs to run"


def test_an_unlocked_group_lets_a_member_edit_its_info_as_whatsapp_does(wa, org, op):
    device = wa.linked_device(org)
    group = wa.sandbox.peer_create_group(owner_phone=wa.peers[0], name="Open", participants=[device.phone])
    page = op.get(reverse("groups:detail", args=[device.pk, group])).content.decode()
    assert 'id="group-info-controls"' in page and 'id="group-admin-controls"' not in page


def test_an_admin_is_offered_everything(wa, org, op):
    device = wa.linked_device(org)
    created = op.post(
        reverse("groups:create", args=[device.pk]), {"name": "Ours", "participants": wa.peers[0]}
    )
    page = op.get(created["Location"]).content.decode()
    assert 'id="group-info-controls"' in page and 'id="group-admin-controls"' in page
    assert "data-not-admin" not in page and "data-promote" in page


def test_the_list_says_how_many_members_in_words(wa, org, op):
    """ "3 members", not a bare "3" (on a phone the column's heading is hidden, so the number stood alone)."""
    device = wa.linked_device(org)
    a, b = wa.peers[0], wa.peers[1]
    created = op.post(
        reverse("groups:create", args=[device.pk]), {"name": "Three of us", "participants": f"{a}, {b}"}
    )
    group = created["Location"].rstrip("/").split("/")[-1]
    for language, said in (("en", "3 members"), ("tr", "3 üye")):
        page = op.get(
            reverse("groups:list", args=[device.pk]), HTTP_ACCEPT_LANGUAGE=language
        ).content.decode()
        row = page[page.index(f'data-group="{group}"') :]
        cell = row[
            row.index('class="group-members"') : row.index("</td>", row.index('class="group-members"'))
        ]
        assert cell.endswith(f">{said}"), cell
    op.post(
        reverse("groups:participants", args=[device.pk, group]),
        {"action": "remove", "participants": f"{a}@s.whatsapp.net, {b}@s.whatsapp.net"},
    )
    page = op.get(reverse("groups:list", args=[device.pk])).content.decode()
    row = page[page.index(f'data-group="{group}"') :]
    assert ">1 member</td>" in row[: row.index("</tr>")]
