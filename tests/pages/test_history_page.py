"""History on link, as people see it: the organization's choice of how far back, the import's progress on the
number's page (and pushed live), and both only within the organization."""

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent
from messaging import live
from messaging.models import HistorySync
from tests.pages.conftest import make_device


@pytest.fixture
def device(org):
    return make_device(org, name="Support", status="connected")


@pytest.fixture
def other_device(other_org):
    return make_device(other_org, name="Theirs", status="connected")


def _sync(device, **fields):
    return HistorySync.objects.create(organization=device.organization, device=device, **fields)


# ---------------------------------------------------------------------------------------------- how far back


def test_an_admin_chooses_how_far_back(owner_client, org):
    page = owner_client.get(reverse("accounts:organization")).content.decode()
    assert 'name="history_days"' in page and "The last 30 days" in page  # the default
    response = owner_client.post(reverse("accounts:organization_history"), {"history_days": "90"})
    assert response.status_code == 302
    org.refresh_from_db()
    assert org.history_days == 90
    assert AuditEvent.objects.get(action="organization.history_days").details == {"from": 30, "to": 90}
    owner_client.post(reverse("accounts:organization_history"), {"history_days": "all"})
    org.refresh_from_db()
    assert org.history_days is None
    page = owner_client.get(reverse("accounts:organization")).content.decode()
    assert '<option value="all" selected>' in page


def test_an_unknown_choice_is_refused_naming_the_field(owner_client, org):
    response = owner_client.post(reverse("accounts:organization_history"), {"history_days": "12"})
    assert response.status_code == 400
    assert "Choose one of: 0, 7, 30, 90, 365, all." in response.content.decode()
    org.refresh_from_db()
    assert org.history_days == 30


def test_htmx_gets_the_section_back(owner_client, org):
    response = owner_client.post(
        reverse("accounts:organization_history"), {"history_days": "0"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert '<option value="0" selected>' in response.content.decode()


def test_operators_see_the_choice_but_cannot_change_it(operator_client, org):
    page = operator_client.get(reverse("accounts:organization")).content.decode()
    assert "data-history-days" in page and 'name="history_days"' not in page
    response = operator_client.post(reverse("accounts:organization_history"), {"history_days": "7"})
    assert response.status_code == 403
    org.refresh_from_db()
    assert org.history_days == 30


def test_another_organizations_admin_changes_only_their_own(outsider_client, org, other_org):
    outsider_client.post(reverse("accounts:organization_history"), {"history_days": "7"})
    org.refresh_from_db()
    other_org.refresh_from_db()
    assert (org.history_days, other_org.history_days) == (30, 7)


# ---------------------------------------------------------------------------------------------- progress


def test_the_numbers_page_shows_the_import_under_way(owner_client, device):
    _sync(
        device,
        state="importing",
        chunks_received=4,
        chunks_imported=1,
        messages_imported=120,
        phone_progress=60,
    )
    page = owner_client.get(reverse("messaging:device", args=[device.pk])).content.decode()
    assert 'data-history-state="importing"' in page and '<progress value="25"' in page
    assert "1 of 4 parts, 120 messages so far (the phone has sent 60%)" in page


def test_the_numbers_page_shows_the_finished_import(owner_client, device):
    _sync(
        device,
        state="finished",
        chunks_received=2,
        chunks_imported=2,
        chats_imported=3,
        messages_imported=40,
        messages_skipped=7,
        finished_at=timezone.now(),
    )
    page = owner_client.get(reverse("messaging:device", args=[device.pk])).content.decode()
    assert "History imported: 3 chats, 40 messages." in page and "7 older messages were skipped." in page


def test_before_any_sync_the_page_says_what_will_happen(owner_client, device):
    html = owner_client.get(reverse("messaging:device_history", args=[device.pk])).content.decode()
    assert 'data-history-state="none"' in html and "The last 30 days" in html


def test_progress_is_pushed_live(device):
    _sync(device, state="importing", chunks_received=2, chunks_imported=1, messages_imported=50)
    [fragment] = live.render_event(event="history.progress", device=device, data={})
    assert f'id="device-{device.pk}-history"' in fragment and 'hx-swap-oob="true"' in fragment
    assert "50 messages so far" in fragment


def test_another_organizations_history_is_404(owner_client, other_device):
    _sync(other_device, state="finished", messages_imported=9)
    response = owner_client.get(reverse("messaging:device_history", args=[other_device.pk]))
    assert response.status_code == 404


def test_the_progress_reads_in_turkish(device):
    from django.utils import translation

    _sync(
        device,
        state="importing",
        chunks_received=4,
        chunks_imported=1,
        messages_imported=120,
        phone_progress=60,
    )
    with translation.override("tr"):
        [fragment] = live.render_event(event="history.progress", device=device, data={})
    assert (
        "Geçmiş içe aktarılıyor: 4 parçanın 1 tanesi, şimdiye kadar 120 mesaj (telefon %60 gönderdi)."
        in fragment
    )
    assert "Son 30 gün" in fragment
