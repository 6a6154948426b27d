"""English and Turkish: the switch in the layout turns the pages Turkish, and back."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_language_switch_turns_the_page_turkish(owner_client):
    page = owner_client.get(reverse("accounts:organization")).content.decode()
    assert "Members" in page and 'lang="en"' in page
    assert 'action="/i18n/setlang/"' in page  # the switch is in the layout
    assert ">Türkçe</option>" in page and ">English</option>" in page
    response = owner_client.post(
        reverse("set_language"), {"language": "tr", "next": reverse("accounts:organization")}
    )
    assert response.status_code == 302
    page = owner_client.get(reverse("accounts:organization")).content.decode()
    assert 'lang="tr"' in page
    assert "Üyeler" in page and "Members" not in page
    assert "Çıkış yap" in page  # the layout too
    owner_client.post(reverse("set_language"), {"language": "en", "next": "/"})
    assert "Members" in owner_client.get(reverse("accounts:organization")).content.decode()


def test_login_page_follows_the_browser_language(client):
    page = client.get(reverse("accounts:login"), headers={"Accept-Language": "tr"}).content.decode()
    assert "Giriş yap" in page and "Parola" in page


def test_turkish_api_keys_and_audit_pages(owner_client):
    owner_client.post(reverse("set_language"), {"language": "tr"})
    assert "API anahtarları" in owner_client.get(reverse("accounts:api_keys")).content.decode()
    assert "Denetim kaydı" in owner_client.get(reverse("accounts:audit_log")).content.decode()


def test_turkish_catalog_is_complete_and_compiled():
    """Every string in the .po is translated, and the committed .mo holds the same translations
    (a fresh machine needs no gettext to compile it)."""
    import ast
    import gettext
    import re

    from django.conf import settings

    directory = settings.LOCALE_PATHS[0] / "tr" / "LC_MESSAGES"
    po = (directory / "django.po").read_text(encoding="utf-8")
    assert "#, fuzzy" not in po.split("\n\n", 1)[1]
    catalog = gettext.GNUTranslations(open(directory / "django.mo", "rb"))
    for block in po.split("\n\n")[1:]:
        if "msgid_plural" in block or block.startswith("#~"):
            continue
        parts = re.findall(r'^(msgctxt|msgid|msgstr) ((?:".*"\n?)+)', block + "\n", flags=re.M)
        fields = {k: "".join(ast.literal_eval(s) for s in v.strip().split("\n")) for k, v in parts}
        if "msgid" not in fields:
            continue
        assert fields["msgstr"], f"untranslated: {fields['msgid']!r}"
        translated = (
            catalog.pgettext(fields["msgctxt"], fields["msgid"])
            if "msgctxt" in fields
            else catalog.gettext(fields["msgid"])
        )
        assert translated == fields["msgstr"], (
            f"the .mo is stale for {fields['msgid']!r}"
        )
