"""Prepared gives what the ORM's queryset gives, from SQL it compiled once, and refuses what it cannot run."""

import pytest
from django.db import connection
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from messaging.models import Device, DeviceLease
from tests.pages.conftest import make_device
from waportal.prepared import Prepared

pytestmark = pytest.mark.django_db


def _devices(org_id):
    return Device.objects.select_related("lease").filter(organization_id=org_id).order_by("pk")


def test_the_objects_are_the_querysets_with_their_related_rows(org):
    linked, unleased = make_device(org, status="connected"), make_device(org)
    DeviceLease.objects.create(device=linked, worker_id="w-1", expires_at=timezone.now())
    builds = []

    def build(org_id):
        builds.append(org_id)
        return _devices(org_id)

    prepared = Prepared(build, int)
    with CaptureQueriesContext(connection) as queries:
        got = prepared(org.pk)
        # the lease came with the device (one statement), a missing one as the ORM leaves it: no query either
        assert got[0].lease.worker_id == "w-1"
        with pytest.raises(Device.lease.RelatedObjectDoesNotExist):
            got[1].lease  # noqa: B018
    assert len(queries) == 1
    expected = list(_devices(org.pk))
    assert [model_to_dict(d) for d in got] == [model_to_dict(d) for d in expected]
    # the dates come back as the ORM's: aware datetimes, on SQLite (text in the database) too
    assert got[0].lease.expires_at == expected[0].lease.expires_at
    assert got[0].created_at.tzinfo is not None
    assert not got[0]._state.adding and got[0]._state.db == "default"
    assert [d.pk for d in got] == [linked.pk, unleased.pk]

    prepared(org.pk + 1000)
    assert prepared(org.pk + 1000) == []
    assert len(builds) == 1  # built and compiled once, run three times


def test_each_value_goes_where_its_stand_in_was(org):
    first, second = make_device(org, name="first"), make_device(org, name="second")
    by_name_and_id = Prepared(
        lambda name, pk: Device.objects.filter(organization_id=org.pk, name=name, pk=pk), str, int
    )
    assert by_name_and_id("second", second.pk) == [second]
    assert by_name_and_id("first", second.pk) == []
    assert by_name_and_id("first", first.pk) == [first]


def test_what_it_cannot_run_is_refused(org):
    prepared = Prepared(_devices, int)
    with pytest.raises(TypeError, match="expected int, got str"):
        prepared(str(org.pk))
    with pytest.raises(TypeError, match="expected int, got bool"):
        prepared(True)
    with pytest.raises(TypeError, match="expected 1 values"):
        prepared()
    twice = Prepared(
        lambda name: Device.objects.filter(name=name) | Device.objects.filter(push_name=name), str
    )
    with pytest.raises(ValueError, match="once in the SQL"):
        twice("x")
    with pytest.raises(TypeError, match="str and int"):
        Prepared(lambda when: Device.objects.filter(created_at=when), type(timezone.now()))(timezone.now())
