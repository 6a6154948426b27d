"""The organization page: members and roles, the last-owner rule, creating and switching organizations."""

import pytest
from django.urls import reverse

from accounts.models import AuditEvent, Membership, Organization, Role
from accounts.tenancy import SESSION_KEY
from tests.conftest import add_member, client_for, make_user

pytestmark = pytest.mark.django_db


def membership_of(user, organization):
    return Membership.objects.get(user=user, organization=organization)


# --- reading ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,args",
    [
        ("accounts:organization", []),
        ("accounts:organization_new", []),
        ("accounts:api_keys", []),
        ("accounts:audit_log", []),
    ],
)
def test_anonymous_visitor_gets_the_login_page(client, name, args):
    response = client.get(reverse(name, args=args))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


@pytest.mark.parametrize(
    "name",
    [
        "accounts:organization_rename",
        "accounts:invite",
        "accounts:api_key_create",
        "accounts:organization_new",
    ],
)
def test_anonymous_writes_go_to_the_login_page(client, name, org):
    response = client.post(reverse(name), {"name": "x", "email": "a@example.com"})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))
    assert not AuditEvent.objects.exists()


def test_members_page_lists_members_with_roles(owner_client, owner, viewer, org):
    page = owner_client.get(reverse("accounts:organization")).content.decode()
    assert owner.email in page and viewer.email in page
    assert "Viewer" in page and "Owner" in page
    assert "Invite someone" in page


def test_a_member_without_a_name_shows_no_dash_just_the_email(owner_client, owner, viewer, org):
    """An empty name cell, not "—" (on a phone that was a lone dash on its own line above the email)."""
    viewer.first_name, viewer.last_name = "Ayşe", "Yılmaz"
    viewer.save()
    page = owner_client.get(reverse("accounts:organization")).content.decode()
    assert not owner.get_full_name()
    members = page[page.index("<tbody>") : page.index("</tbody>")]
    assert "—" not in members
    row = members[members.index(f'id="member-{membership_of(owner, org).pk}"') :]
    assert row.split("<td", 2)[1] == ' class="member-name"></td>\n      '
    assert owner.email in row
    assert '<td class="member-name">Ayşe Yılmaz</td>' in members


def test_viewer_sees_members_but_no_management_forms(viewer_client, owner):
    page = viewer_client.get(reverse("accounts:organization")).content.decode()
    assert owner.email in page
    assert "Invite someone" not in page
    assert "Change role" not in page


def test_page_shows_only_the_current_organization(outsider_client, owner, other_org):
    page = outsider_client.get(reverse("accounts:organization")).content.decode()
    assert other_org.name in page
    assert owner.email not in page


# --- roles ---------------------------------------------------------------------------------------


def test_owner_changes_a_role_and_it_is_audited(owner_client, owner, viewer, org):
    m = membership_of(viewer, org)
    response = owner_client.post(reverse("accounts:member_role", args=[m.pk]), {"role": "operator"})
    assert response.status_code == 302
    m.refresh_from_db()
    assert m.role == Role.OPERATOR
    event = AuditEvent.objects.get(action="member.role_change")
    assert event.organization == org and event.actor == owner
    assert event.details == {"from": "viewer", "to": "operator"}
    assert event.ip_address == "127.0.0.1"


def test_role_change_over_htmx_answers_the_members_partial(owner_client, viewer, org):
    m = membership_of(viewer, org)
    response = owner_client.post(
        reverse("accounts:member_role", args=[m.pk]), {"role": "admin"}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="team">')
    assert "<html" not in body
    assert "is now Admin" in body


def test_viewer_cannot_change_roles(viewer_client, viewer, owner, org):
    m = membership_of(owner, org)
    response = viewer_client.post(reverse("accounts:member_role", args=[m.pk]), {"role": "viewer"})
    assert response.status_code == 403
    m.refresh_from_db()
    assert m.role == Role.OWNER
    own = membership_of(viewer, org)
    response = viewer_client.post(reverse("accounts:member_role", args=[own.pk]), {"role": "owner"})
    assert response.status_code == 403
    own.refresh_from_db()
    assert own.role == Role.VIEWER
    assert not AuditEvent.objects.exists()


def test_operator_cannot_change_roles(operator_client, viewer, org):
    m = membership_of(viewer, org)
    assert (
        operator_client.post(reverse("accounts:member_role", args=[m.pk]), {"role": "admin"}).status_code
        == 403
    )
    m.refresh_from_db()
    assert m.role == Role.VIEWER


def test_changing_a_role_in_another_organization_is_404(outsider_client, viewer, org):
    m = membership_of(viewer, org)
    response = outsider_client.post(reverse("accounts:member_role", args=[m.pk]), {"role": "owner"})
    assert response.status_code == 404
    m.refresh_from_db()
    assert m.role == Role.VIEWER


def test_removing_a_member_of_another_organization_is_404(outsider_client, viewer, org):
    m = membership_of(viewer, org)
    assert outsider_client.post(reverse("accounts:member_remove", args=[m.pk])).status_code == 404
    assert Membership.objects.filter(pk=m.pk).exists()


def test_last_owner_cannot_be_demoted(owner_client, owner, org):
    m = membership_of(owner, org)
    response = owner_client.post(reverse("accounts:member_role", args=[m.pk]), {"role": "admin"})
    assert response.status_code == 400
    assert "last owner" in response.content.decode()
    m.refresh_from_db()
    assert m.role == Role.OWNER
    assert not AuditEvent.objects.filter(action="member.role_change").exists()


def test_last_owner_error_shows_in_the_htmx_partial(owner_client, owner, org):
    m = membership_of(owner, org)
    response = owner_client.post(
        reverse("accounts:member_role", args=[m.pk]), {"role": "viewer"}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    assert 'role="alert"' in response.content.decode()
    assert "last owner" in response.content.decode()
    m.refresh_from_db()
    assert m.role == Role.OWNER


def test_last_owner_cannot_be_removed_nor_leave(owner_client, owner, org, admin_user):
    m = membership_of(owner, org)
    response = owner_client.post(reverse("accounts:member_remove", args=[m.pk]))
    assert response.status_code == 400
    assert "last owner" in response.content.decode()
    assert Membership.objects.filter(pk=m.pk).exists()


def test_an_owner_can_step_down_when_another_owner_remains(owner_client, owner, org):
    second = add_member(org, Role.OWNER)
    m = membership_of(owner, org)
    assert (
        owner_client.post(reverse("accounts:member_role", args=[m.pk]), {"role": "admin"}).status_code == 302
    )
    m.refresh_from_db()
    assert m.role == Role.ADMIN
    # now `second` is the last owner
    s = membership_of(second, org)
    assert (
        client_for(second).post(reverse("accounts:member_role", args=[s.pk]), {"role": "admin"}).status_code
        == 400
    )


def test_admin_cannot_make_or_unmake_owners(admin_user, owner, viewer, org):
    c = client_for(admin_user)
    v = membership_of(viewer, org)
    assert c.post(reverse("accounts:member_role", args=[v.pk]), {"role": "owner"}).status_code == 403
    v.refresh_from_db()
    assert v.role == Role.VIEWER
    o = membership_of(owner, org)
    assert c.post(reverse("accounts:member_role", args=[o.pk]), {"role": "viewer"}).status_code == 403
    assert c.post(reverse("accounts:member_remove", args=[o.pk])).status_code == 403
    o.refresh_from_db()
    assert o.role == Role.OWNER
    me = membership_of(admin_user, org)
    assert c.post(reverse("accounts:member_role", args=[me.pk]), {"role": "owner"}).status_code == 403
    me.refresh_from_db()
    assert me.role == Role.ADMIN


def test_admin_manages_non_owners(admin_user, viewer, org):
    c = client_for(admin_user)
    v = membership_of(viewer, org)
    assert c.post(reverse("accounts:member_role", args=[v.pk]), {"role": "operator"}).status_code == 302
    v.refresh_from_db()
    assert v.role == Role.OPERATOR
    assert c.post(reverse("accounts:member_remove", args=[v.pk])).status_code == 302
    assert not Membership.objects.filter(pk=v.pk).exists()


def test_unknown_role_is_refused(owner_client, viewer, org):
    m = membership_of(viewer, org)
    response = owner_client.post(reverse("accounts:member_role", args=[m.pk]), {"role": "emperor"})
    assert response.status_code == 400
    m.refresh_from_db()
    assert m.role == Role.VIEWER


def test_owner_removes_a_member_and_it_is_audited(owner_client, owner, operator, org):
    m = membership_of(operator, org)
    response = owner_client.post(reverse("accounts:member_remove", args=[m.pk]), follow=True)
    assert response.status_code == 200
    assert operator.email not in response.content.decode().split("<main")[1].split("is removed")[1]
    assert not Membership.objects.filter(pk=m.pk).exists()
    event = AuditEvent.objects.get(action="member.remove")
    assert event.actor == owner and event.object_repr == operator.email


def test_viewer_cannot_remove_others(viewer_client, operator, org):
    m = membership_of(operator, org)
    assert viewer_client.post(reverse("accounts:member_remove", args=[m.pk])).status_code == 403
    assert Membership.objects.filter(pk=m.pk).exists()


def test_a_member_may_leave(viewer_client, viewer, org, owner):
    m = membership_of(viewer, org)
    response = viewer_client.post(reverse("accounts:member_remove", args=[m.pk]))
    assert response.status_code == 302
    assert not Membership.objects.filter(pk=m.pk).exists()
    assert AuditEvent.objects.get(action="member.leave").actor == viewer


def test_removed_member_loses_access(owner_client, operator, org):
    c = client_for(operator)
    assert c.get(reverse("accounts:organization")).status_code == 200
    owner_client.post(reverse("accounts:member_remove", args=[membership_of(operator, org).pk]))
    # In no organization now: led to create one (issue 16), never shown the old one.
    response = c.get(reverse("accounts:organization"))
    assert response.status_code == 302 and response["Location"] == reverse("accounts:organization_new")


# --- rename, create, switch ----------------------------------------------------------------------


def test_owner_renames_the_organization(owner_client, org):
    assert owner_client.post(reverse("accounts:organization_rename"), {"name": "Acme Ltd"}).status_code == 302
    org.refresh_from_db()
    assert org.name == "Acme Ltd"
    assert AuditEvent.objects.get(action="organization.rename").details == {"from": "Acme", "to": "Acme Ltd"}


def test_viewer_cannot_rename(viewer_client, org):
    assert (
        viewer_client.post(reverse("accounts:organization_rename"), {"name": "Hijacked"}).status_code == 403
    )
    org.refresh_from_db()
    assert org.name == "Acme"


def test_create_organization_makes_you_owner_and_switches_to_it(owner_client, owner, org):
    response = owner_client.post(reverse("accounts:organization_new"), {"name": "Second Shop"}, follow=True)
    assert response.status_code == 200
    new = Organization.objects.get(name="Second Shop")
    assert membership_of(owner, new).role == Role.OWNER
    assert "<h1>Second Shop</h1>" in response.content.decode()
    assert owner_client.session[SESSION_KEY] == new.id
    assert AuditEvent.objects.get(action="organization.create").organization == new
    # the slug is made unique
    owner_client.post(reverse("accounts:organization_new"), {"name": "Second Shop"})
    assert Organization.objects.filter(name="Second Shop").count() == 2


def test_create_organization_needs_a_name(owner_client):
    response = owner_client.post(reverse("accounts:organization_new"), {"name": "  "})
    assert response.status_code == 400
    assert not Organization.objects.filter(name="").exists()


def test_user_without_organization_is_offered_to_create_one(db):
    c = client_for(make_user())
    response = c.get(reverse("home"))
    assert response["Location"] == reverse("accounts:organization_new")
    assert c.get(reverse("accounts:organization_new")).status_code == 200


def test_switch_organization(owner, org, other_org):
    add_member(other_org, Role.VIEWER, user=owner)
    c = client_for(owner)
    c.post(reverse("accounts:switch"), {"organization": other_org.id})
    page = c.get(reverse("accounts:organization")).content.decode()
    assert "<h1>Rival</h1>" in page
    c.post(reverse("accounts:switch"), {"organization": org.id})
    assert "<h1>Acme</h1>" in c.get(reverse("accounts:organization")).content.decode()


def test_cannot_switch_to_an_organization_you_are_not_in(owner_client, other_org):
    owner_client.post(reverse("accounts:switch"), {"organization": other_org.id})
    assert "<h1>Acme</h1>" in owner_client.get(reverse("accounts:organization")).content.decode()
    owner_client.post(reverse("accounts:switch"), {"organization": "nonsense"})
    assert owner_client.get(reverse("accounts:organization")).status_code == 200


def test_home_takes_a_member_to_the_dashboard(owner_client):
    response = owner_client.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"] in {"/dashboard/", reverse("accounts:organization")}


def test_leaving_over_htmx_redirects_the_browser_home(viewer_client, viewer, org, owner):
    m = membership_of(viewer, org)
    response = viewer_client.post(
        reverse("accounts:member_remove", args=[m.pk]), headers={"HX-Request": "true"}
    )
    assert response.status_code == 204 and response["HX-Redirect"] == reverse("home")
    assert not Membership.objects.filter(pk=m.pk).exists()
