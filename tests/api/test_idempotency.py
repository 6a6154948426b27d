"""Idempotency-Key on the API's POSTs: a retry gets the first answer and nothing is sent twice."""

import threading
from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from messaging import gateway
from messaging.models import IdempotencyKey, Message
from tests.api.conftest import PEER, ApiClient, error
from tests.api.endpoints import PNG, upload

KEY = {"Idempotency-Key": "6f1c2b9e-retry-me"}


def _send(api, text="Merhaba", headers=KEY):
    return api.post("/send/message", {"phone": PEER, "message": text}, headers=headers)


@pytest.mark.django_db
def test_the_same_key_twice_sends_one_message_and_answers_the_same(api, device):
    first = _send(api)
    again = _send(api)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and first.json()["results"]["status"] == "queued"
    assert again["Idempotent-Replayed"] == "true" and not first.has_header("Idempotent-Replayed")
    assert Message.objects.filter(device=device, text="Merhaba").count() == 1
    # JSON is compared as data: the same request with its keys in another order is the same request
    reordered = api.client.post(
        "/send/message",
        f'{{"message": "Merhaba", "phone": "{PEER}"}}',
        content_type="application/json",
        headers=api.headers(KEY),
    )
    assert reordered.json() == first.json()
    assert Message.objects.filter(device=device).count() == 1


@pytest.mark.django_db
def test_without_a_key_every_post_runs(api, device):
    _send(api, headers={})
    _send(api, headers={})
    assert Message.objects.filter(device=device).count() == 2


@pytest.mark.django_db
def test_the_same_key_with_another_request_is_422_and_runs_nothing(api, device):
    _send(api, "first")
    body = error(_send(api, "second"), 422, "IDEMPOTENCY_KEY_REUSED", "Idempotency-Key")
    assert "another request" in body["message"]
    error(api.post("/user/pushname", {"push_name": "x"}, headers=KEY), 422, "IDEMPOTENCY_KEY_REUSED")
    assert list(Message.objects.filter(device=device).values_list("text", flat=True)) == ["first"]


@pytest.mark.django_db
def test_keys_belong_to_one_organization(api, device, other_api_key, other_device):
    mine = _send(api)
    theirs = _send(ApiClient(other_api_key))
    assert theirs.status_code == 200 and not theirs.has_header("Idempotent-Replayed")
    assert theirs.json()["results"]["message_id"] != mine.json()["results"]["message_id"]
    assert Message.objects.filter(device=device).count() == 1
    assert Message.objects.filter(device=other_device).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_duplicate_while_the_first_is_running_is_409_then_the_first_answer(api, device):
    from messaging.api import send

    entered, release = threading.Event(), threading.Event()
    queue_message = send.queue_message

    def slow_queue_message(**kwargs):
        entered.set()
        assert release.wait(30)
        return queue_message(**kwargs)

    answers = {}
    with mock.patch("messaging.api.send.queue_message", slow_queue_message):
        first = threading.Thread(target=lambda: answers.setdefault("first", _send(ApiClient(api.key))))
        first.start()
        try:
            assert entered.wait(30)
            busy = _send(api)
            error(busy, 409, "IDEMPOTENCY_KEY_IN_USE", "Idempotency-Key")
            assert busy["Retry-After"] == "1"
        finally:
            release.set()
            first.join(30)
    assert answers["first"].status_code == 200
    assert _send(api).json() == answers["first"].json()
    assert Message.objects.filter(device=device).count() == 1


@pytest.mark.django_db
def test_an_answer_that_invites_a_retry_is_not_kept(api):
    with mock.patch("messaging.gateway.call", side_effect=gateway.Unavailable()):
        error(api.post("/user/pushname", {"push_name": "Ali"}, headers=KEY), 503, "SERVICE_UNAVAILABLE")
    with mock.patch("messaging.gateway.call", return_value=None):
        retried = api.post("/user/pushname", {"push_name": "Ali"}, headers=KEY)
    assert retried.status_code == 200 and not retried.has_header("Idempotent-Replayed")
    assert IdempotencyKey.objects.get().status_code == 200


@pytest.mark.django_db
def test_an_upload_sent_again_with_the_key_is_answered_from_the_first(api, device):
    form = {"phone": PEER, "caption": "Resim"}
    first = api.post_form("/send/image", {**form, "image": upload("a.png", PNG)}, headers=KEY)
    assert first.status_code == 200, first.content
    again = api.post_form("/send/image", {**form, "image": upload("a.png", PNG)}, headers=KEY)
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    other = api.post_form("/send/image", {**form, "image": upload("a.png", PNG + b"\0")}, headers=KEY)
    error(other, 422, "IDEMPOTENCY_KEY_REUSED")
    assert Message.objects.filter(device=device).count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9"])
def test_a_malformed_key_is_400_naming_the_header(api, device, key):
    error(_send(api, headers={"Idempotency-Key": key}), 400, "VALIDATION_ERROR", "Idempotency-Key")
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_a_key_is_forgotten_by_the_clean_up_after_24_hours(api, device):
    from messaging.tasks import cleanup

    _send(api)
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=24, minutes=1))
    assert cleanup()["idempotency_keys"] == 1
    assert not _send(api).has_header("Idempotent-Replayed")
    assert Message.objects.filter(device=device).count() == 2


@pytest.mark.django_db
def test_a_key_whose_request_died_mid_way_is_taken_over(api, device):
    _send(api, "first")
    # As if the web process was killed while answering: the key is in flight, long after any request ends.
    IdempotencyKey.objects.update(status_code=None, created_at=timezone.now() - timedelta(minutes=11))
    assert _send(api, "first").status_code == 200
    assert IdempotencyKey.objects.get().status_code == 200


@pytest.mark.django_db
def test_every_post_of_the_openapi_document_takes_the_header(client):
    schema = client.get("/openapi.json").json()
    posts = [item["post"] for item in schema["paths"].values() if "post" in item]
    assert len(posts) > 20
    for post in posts:
        assert "Idempotency-Key" in {p["name"] for p in post["parameters"] if p["in"] == "header"}
    assert "Idempotency-Key" in schema["info"]["description"]
