"""Every word in Turkish when Turkish is chosen: each dashboard page, and the refusals that services, the gateway
and the simulated network raise, come from our catalogue translated. A page that shows one of the catalogue's
messages in English (whole, or filled in with its values) fails, naming the message."""

import ast
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import translation

from waportal.i18n import _templates, localize

ROOT = Path(settings.BASE_DIR)
PO = ROOT / "locale" / "tr" / "LC_MESSAGES" / "django.po"


def _catalogue() -> dict[str, str]:
    out = {}
    for block in PO.read_text(encoding="utf-8").split("\n\n"):
        parts = dict(re.findall(r'^(msgid|msgstr) ((?:".*"\n?)+)', block + "\n", flags=re.M))
        if "msgid" in parts and "msgstr" in parts:
            msgid, msgstr = (
                "".join(ast.literal_eval(s) for s in parts[k].strip().split("\n")) for k in parts
            )
            if msgid:
                out[msgid] = msgstr
    return out


CATALOGUE = _catalogue()
# Messages whose Turkish differs from their English: seeing the English on a Turkish page means one was missed.
# One-word messages and codes that read the same in a sentence of user data ("API", "Webhook") are left out.
# The language switch names each language in itself ("English" on a Turkish page is right).
ENGLISH = {
    m for m, t in CATALOGUE.items() if t != m and len(m) > 3 and re.search(r"[a-z]{3}", m) and m != "English"
}
FILLED = [(m, regex) for m, regex in _templates() if m in ENGLISH]


class _Texts(HTMLParser):
    """The words a reader sees: text between tags and the attributes a browser shows."""

    SHOWN = {"title", "placeholder", "aria-label", "alt"}

    def __init__(self):
        super().__init__()
        self.texts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "pre", "code"):
            self._skip += 1
        for name, value in attrs:
            if value and (name in self.SHOWN or (name == "value" and ("type", "submit") in attrs)):
                self.texts.append(value)

    def handle_endtag(self, tag):
        if tag in ("script", "style", "pre", "code"):
            self._skip = max(0, self._skip - 1)

    def handle_data(self, data):
        if not self._skip and data.strip():
            self.texts.append(data)


def english_left(html: str) -> set[str]:
    """The catalogue's English messages found whole in the page's text."""
    parser = _Texts()
    parser.feed(html)
    found = set()
    for raw in parser.texts:
        text = " ".join(raw.split())
        for piece in {text, text.rstrip(":"), *re.split(r"(?<=[.!?])\s+", text)}:
            if piece in ENGLISH:
                found.add(piece)
            elif "%(" not in piece:
                found.update(m for m, regex in FILLED if regex.fullmatch(piece))
    return found


# WhatsApp's own values (privacy settings, a follower's role), which a page must put into words.
RAW_VALUES = re.compile(
    r"<td>(all|contacts|contact_blacklist|none|match_last_seen)</td>|· (subscriber|guest)<"
)


def turkish(client):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "tr"
    return client


# -- the code: every refusal a person may read is a message of the catalogue, translated

REFUSALS = {
    "NotFound",
    "Forbidden",
    "InvalidRequest",
    "NotConnected",
    "NotLoggedIn",
    "NotSupported",
    "UpstreamTimeout",
    "ReachoutTimelock",
    "WhatsAppError",
    "UnsafeTarget",
}


def _python_files():
    for package in ("messaging", "groups", "accounts"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def test_every_refusal_is_raised_as_a_message_of_the_catalogue():
    """A refusal raised with a bare or f-string text could not be translated where it is shown."""
    bare = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args):
                continue
            func = node.exc.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name in REFUSALS and isinstance(node.exc.args[0], (ast.Constant, ast.JoinedStr)):
                bare.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not bare, f"refusals raised with an untranslatable text: {bare}"


def test_every_message_marked_in_the_code_is_translated():
    missing = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", "") in ("_noop", "gettext_noop", "_", "gettext", "gettext_lazy")
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
                and not CATALOGUE.get(node.args[0].value)
            ):
                missing.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.args[0].value!r}")
    assert not missing, "not in the Turkish catalogue:\n" + "\n".join(missing)


def test_a_message_made_in_english_elsewhere_is_shown_in_turkish():
    with translation.override("tr"):
        assert localize("'merhaba' is not a phone number (country code and number, e.g. 905xxxxxxxxx)") == (
            "'merhaba' bir telefon numarası değil (ülke kodu ve numara, ör. 905xxxxxxxxx)"
        )
        assert localize("905551234567 is not on WhatsApp.") == "905551234567 WhatsApp'ta değil."
        # A message inside another: both translated.
        assert localize("to: 'x' is not a phone number: it needs 7 to 15 digits with the country code") == (
            "to: 'x' bir telefon numarası değil: ülke koduyla birlikte 7 ile 15 rakam olmalı"
        )
        assert localize("Only group admins can see join requests.") == (
            "Yalnızca grup yöneticileri şunu yapabilir: katılma isteklerini görmek."
        )
        assert (
            localize("something WhatsApp said that we never wrote")
            == "something WhatsApp said that we never wrote"
        )
    with translation.override("en"):
        assert localize("905551234567 is not on WhatsApp.") == "905551234567 is not on WhatsApp."


def test_the_check_finds_english_left_on_a_page():
    """The checker itself: an English message of ours, whole or filled in, is found; its Turkish is not."""
    assert english_left("<p>Members</p>") == {"Members"}
    assert "%(number)s is not on WhatsApp." in english_left(
        '<input placeholder="905551234567 is not on WhatsApp.">'
    )
    assert not english_left("<p>Üyeler</p><p>905551234567 WhatsApp'ta değil.</p>")


# -- the pages


@pytest.fixture
def world(wa, org, owner, other_org, settings):
    """A linked number with a chat, a group, a webhook with a delivery, an API key and audit events."""
    from accounts.services import create_api_key
    from groups.services import create_group
    from messaging.services import outbox
    from messaging.webhooks import services as webhook_services

    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    device = wa.linked_device(org, name="Destek hattı")
    peer = wa.peers[0]
    outbox.queue_message(
        organization=org, device=device, outgoing={"to": peer, "kind": "text", "text": "Merhaba"}, actor=owner
    )
    group = create_group(organization=org, device=device, name="Ekip", participants=[peer], actor=owner)
    endpoint = webhook_services.create_endpoint(
        organization=org, url="http://127.0.0.1:9/wa", events=["message.received"], actor=owner
    )
    webhook_services.send_test_event(organization=org, endpoint=endpoint, actor=owner)
    create_api_key(organization=org, name="CI anahtarı", actor=owner)
    return {"device": device, "group": group, "endpoint": endpoint}


def _pages(world):
    from messaging.models import WebhookDelivery

    device, group, endpoint = world["device"], world["group"], world["endpoint"]
    chat = device.chats.order_by("pk").first()
    delivery = WebhookDelivery.objects.filter(endpoint=endpoint).first()
    d = device.pk
    pages = [
        ("accounts:organization", []),
        ("accounts:organization_new", []),
        ("accounts:password_change", []),
        ("accounts:api_keys", []),
        ("accounts:audit_log", []),
        ("messaging:devices", []),
        ("messaging:device", [d]),
        ("messaging:profile", [d]),
        ("messaging:compose", [d]),
        ("messaging:inbox", [d]),
        ("messaging:conversation", [d, chat.pk]),
        ("messaging:sandbox", []),
        ("groups:list", [d]),
        ("groups:detail", [d, group.jid]),
        ("webhooks:list", []),
        ("webhooks:create", []),
        ("webhooks:detail", [endpoint.pk]),
    ]
    for section in ("privacy", "contacts", "newsletters"):
        pages.append(("messaging:profile_section", [d, section]))
    if delivery is not None:
        pages.append(("webhooks:delivery", [endpoint.pk, delivery.pk]))
    return pages


def test_every_page_is_turkish_when_turkish_is_chosen(world, owner_client):
    client = turkish(owner_client)
    left = {}
    for name, args in _pages(world):
        response = client.get(reverse(name, args=args))
        assert response.status_code == 200, name
        page = response.content.decode()
        assert 'lang="tr"' in page or name == "messaging:profile_section", name
        assert not RAW_VALUES.search(page), (name, RAW_VALUES.search(page).group())
        if found := english_left(page):
            left[name] = sorted(found)
    assert not left, f"English left on Turkish pages: {left}"


def test_a_viewers_pages_and_the_error_pages_are_turkish(world, viewer_client, client):
    viewer = turkish(viewer_client)
    device = world["device"]
    left = {}
    for url in (
        reverse("messaging:devices"),
        reverse("messaging:compose", args=[device.pk]),
        "/no-such-page/",
    ):
        page = viewer.get(url).content.decode()
        if found := english_left(page):
            left[url] = sorted(found)
    anonymous = turkish(client).get(reverse("accounts:login")).content.decode()
    if found := english_left(anonymous):
        left["login"] = sorted(found)
    assert not left, f"English left on Turkish pages: {left}"


# -- the refusals people meet, in Turkish


def _shown(response) -> str:
    from html import unescape

    return unescape(response.content.decode())


def test_refusals_from_services_and_the_simulated_network_are_turkish(world, operator_client, settings):
    client = turkish(operator_client)
    device = world["device"]
    compose = reverse("messaging:compose", args=[device.pk])

    body = _shown(client.post(compose, {"kind": "text", "to": "merhaba", "text": "Selam"}))
    assert "'merhaba' bir telefon numarası değil" in body and not english_left(body)

    body = _shown(client.post(compose, {"kind": "text", "to": "905550000001", "text": "Selam"}, follow=True))
    assert not english_left(body), english_left(body)

    body = _shown(
        client.post(
            reverse("groups:join", args=[device.pk]),
            {"link": "https://chat.whatsapp.com/NoSuchInvite123"},
            follow=True,
        )
    )
    assert "davet bağlantısı geçerli değil" in body and not english_left(body)

    body = _shown(client.get(reverse("messaging:profile_lookup", args=[device.pk]), {"phone": "merhaba"}))
    assert "bir telefon numarası değil" in body and not english_left(body)

    body = _shown(
        client.post(reverse("messaging:device_pair", args=[device.pk]), {"phone": "abc"}, follow=True)
    )
    assert not english_left(body), english_left(body)
