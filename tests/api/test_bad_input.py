"""Input no endpoint can use is a 4xx naming what is wrong, never a 5xx: text the database cannot store (a lone
surrogate, a NUL), and bodies that are not JSON where JSON is expected (messaging.api.common.ApiParser)."""

import json

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from messaging.models import Chat, Message
from tests.api.conftest import ApiClient, error
from tests.api.endpoints import PDF, upload

PHONE = "905551112233"


def post_raw(api: ApiClient, path: str, body, content_type: str):
    return api.client.post(path, body, content_type=content_type, headers=api.headers())


# ------------------------------------------------------------------------------------------ text


@pytest.mark.django_db
def test_a_lone_surrogate_in_the_message_is_a_400_naming_message_and_nothing_is_stored(api):
    # json.dumps writes the surrogate as the escape \ud800, as a client's JSON library would
    body = json.dumps({"phone": PHONE, "message": "Merhaba \ud800"})
    answer = error(
        post_raw(api, "/send/message", body, "application/json"), 400, "VALIDATION_ERROR", "message"
    )
    assert answer["results"][0]["field"] == "message" and "surrogate" in answer["message"]
    assert not Message.objects.exists() and not Chat.objects.exists()


@pytest.mark.django_db
def test_raw_surrogate_bytes_nested_fields_and_nul_are_refused_naming_the_field(api):
    # the UTF-8 form of a surrogate (Python's json reads bytes with surrogatepass)
    raw = b'{"phone": "905551112233", "message": "\xed\xa0\x80"}'
    error(post_raw(api, "/send/message", raw, "application/json"), 400, "VALIDATION_ERROR", "message")
    poll = {"phone": PHONE, "question": "Renk?", "options": ["Mavi", "\udfff"]}
    answer = error(post_raw(api, "/send/poll", json.dumps(poll), "application/json"), 400, "VALIDATION_ERROR")
    assert answer["results"][0]["field"] == "options[1]"
    nul = json.dumps({"phone": PHONE, "contact_name": "A\x00B", "contact_phone": PHONE})
    answer = error(
        post_raw(api, "/send/contact", nul, "application/json"), 400, "VALIDATION_ERROR", "contact_name"
    )
    assert "NUL" in answer["message"]
    # a form field of a multipart endpoint, and a query parameter
    answer = api.post_form("/send/file", {"phone": PHONE, "caption": "a\x00b", "file": upload("d.pdf", PDF)})
    error(answer, 400, "VALIDATION_ERROR", "caption")
    error(api.get("/user/info", {"phone": "9055\x0051112233"}), 400, "VALIDATION_ERROR", "phone")
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_the_outbox_refuses_unstorable_text_from_any_caller(org, device):
    from django.core.exceptions import ValidationError

    from messaging.services.outbox import queue_message

    with pytest.raises(ValidationError) as refused:
        queue_message(
            organization=org, device=device, outgoing={"to": PHONE, "kind": "text", "text": "x\ud800"}
        )
    assert "text" in refused.value.message_dict
    assert not Message.objects.exists()


# Every code point, surrogates included, with the characters that break text more often than others. (A list
# joined, not st.text: that leaves surrogates out even of an alphabet that has them.)
ANY_TEXT = st.lists(
    st.one_of(
        st.characters(categories=("Cs",)),
        st.sampled_from(["\x00", "'", '"', "\\", "%", "\u0130", "\U0001f642", "\ufeff"]),
        st.characters(exclude_categories=()),
    ),
    max_size=40,
).map("".join)

# A valid body of each JSON send; one field at a time is replaced by arbitrary text.
JSON_SENDS = {
    "/send/message": {"phone": PHONE, "message": "Merhaba", "reply_message_id": "3EB0AAAA"},
    "/send/contact": {"phone": PHONE, "contact_name": "Ahmet", "contact_phone": PHONE},
    "/send/link": {"phone": PHONE, "link": "https://example.com/", "caption": "Bak"},
    "/send/poll": {"phone": PHONE, "question": "Renk?", "options": ["Mavi", "Yeşil"]},
    "/send/location": {"phone": PHONE, "latitude": "41.0", "longitude": "28.9"},
}
FIELDS = sorted((path, name) for path, body in JSON_SENDS.items() for name in body)


@pytest.mark.django_db
@hypothesis_settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=ANY_TEXT, where=st.sampled_from(FIELDS))
def test_any_text_in_any_send_field_is_never_a_server_error(api, text, where):
    path, name = where
    body = dict(JSON_SENDS[path])
    body[name] = [text, "x"] if isinstance(body[name], list) else body[name] + text
    answer = post_raw(api, path, json.dumps(body), "application/json")
    assert answer.status_code < 500, answer.content
    assert set(answer.json()) == {"code", "message", "results"}


@pytest.mark.django_db
@hypothesis_settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(st.characters(exclude_categories=("Cs",)), max_size=40))
def test_any_text_in_a_multipart_send_is_never_a_server_error(api, text):
    answer = api.post_form(
        "/send/file", {"phone": PHONE, "caption": text, "file": upload(f"{text}.pdf", PDF)}
    )
    assert answer.status_code < 500, answer.content


# ------------------------------------------------------------------------------------------ 415


@pytest.mark.django_db
def test_a_body_that_is_not_said_to_be_json_is_415_with_the_envelope(api):
    text = json.dumps({"phone": PHONE, "message": "Merhaba"})
    for content_type in ("text/plain", "application/xml", "application/jsonx"):
        answer = error(
            post_raw(api, "/send/message", text, content_type), 415, "UNSUPPORTED_MEDIA_TYPE", "body"
        )
        assert content_type in answer["message"]
    form = "phone=905551112233&message=Merhaba"
    error(
        post_raw(api, "/send/message", form, "application/x-www-form-urlencoded"),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    )
    error(
        api.post_form("/send/message", {"phone": PHONE, "message": "Merhaba"}), 415, "UNSUPPORTED_MEDIA_TYPE"
    )
    assert not Message.objects.exists()
    # JSON with parameters, or a +json type, is JSON
    for content_type in ("application/json; charset=utf-8", "Application/JSON", "application/vnd.api+json"):
        answer = post_raw(api, "/send/message", text, content_type)
        assert answer.status_code == 200, (content_type, answer.content)
    # multipart endpoints take multipart, as before
    answer = api.post_form("/send/file", {"phone": PHONE, "file": upload("d.pdf", PDF)})
    assert answer.status_code == 200, answer.content


@pytest.mark.django_db
def test_415_comes_after_auth_and_not_for_another_organizations_device(read_only_api, other_device, api_key):
    text = json.dumps({"phone": PHONE, "message": "Merhaba"})
    error(post_raw(ApiClient(None), "/send/message", text, "text/plain"), 401, "UNAUTHORIZED")
    # another organization's device is still not found, whatever the body
    theirs = ApiClient(api_key, device=other_device)
    error(post_raw(theirs, "/send/message", text, "application/json"), 404, "DEVICE_NOT_FOUND")
