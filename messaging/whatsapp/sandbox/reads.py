"""Reads a connected device makes of the simulated network: profiles, pictures, contacts, numbers, media."""

from __future__ import annotations

from django.utils.translation import gettext_noop as _noop

from messaging.whatsapp import protocol as p
from messaging.whatsapp.protocol import (
    Avatar,
    BusinessProfile,
    ContactInfo,
    Forbidden,
    InvalidRequest,
    Newsletter,
    NewsletterPost,
    NotFound,
    OnWhatsApp,
    UserInfo,
)
from messaging.whatsapp.sandbox.media import _data_url, identicon
from messaging.whatsapp.sandbox.network import (
    DEFAULT_PRIVACY,
    _jid,
    _user_jid,
)


def _user_info(jids: list[str]) -> list[UserInfo]:
    from messaging.models import SandboxAccount, SandboxSession

    out = []
    for value in jids or []:
        jid = _jid(value, field="jids")
        account = SandboxAccount.objects.filter(phone=p.jid_user(jid), registered=True).first()
        if account is None:
            continue
        sessions = SandboxSession.objects.filter(phone=account.phone).count()
        out.append(
            UserInfo(
                jid=account.jid,
                status="" if account.privacy.get("status") == "none" else account.about,
                picture_id="" if account.privacy.get("profile") == "none" else account.picture_id,
                devices=[
                    f"{account.phone}:{i}@{p.USER_SERVER}" if i else account.jid for i in range(sessions + 1)
                ],
                verified_name=account.verified_name,
            )
        )
    return out


def avatar_bytes(jid: str, *, preview: bool = False) -> bytes | None:
    """The picture of an account or group (PNG unless one was set), or None if hidden or unknown."""
    from messaging.models import SandboxAccount, SandboxGroup

    jid = _jid(jid)
    if p.is_group(jid):
        group = SandboxGroup.objects.filter(jid=jid).first()
        if group is None:
            return None
        return (
            bytes(group.picture)
            if group.picture
            else identicon(f"{group.jid}:{group.picture_id}", 32 if preview else 96)
        )
    account = SandboxAccount.objects.filter(phone=p.jid_user(jid), registered=True).first()
    if account is None or account.privacy.get("profile") == "none":
        return None
    return (
        bytes(account.picture)
        if account.picture
        else identicon(f"{account.jid}:{account.picture_id}", 32 if preview else 96)
    )


def _avatar(jid: str, preview: bool, viewer: str = "") -> Avatar | None:
    """The picture of an account, or of a group `viewer` (a JID) is in: as on WhatsApp, a group's picture is
    for its participants (another organization's group shows nothing of itself)."""
    from messaging.models import SandboxAccount, SandboxGroup

    jid = _jid(jid)
    if p.is_group(jid):
        group = SandboxGroup.objects.filter(jid=jid).only("participants", "picture_id").first()
        if group is None:
            raise NotFound(_noop("There is no group %(jid)s.") % {"jid": jid})
        if viewer and viewer not in group.participants:
            raise Forbidden(_noop("You are not a participant of this group."))
        picture_id = group.picture_id
    else:
        account = SandboxAccount.objects.filter(phone=p.jid_user(jid), registered=True).first()
        if account is None:
            raise NotFound(_noop("%(number)s is not on WhatsApp.") % {"number": p.jid_user(jid)})
        picture_id = account.picture_id
    data = avatar_bytes(jid, preview=preview)
    if data is None:
        return None
    mime = "image/jpeg" if data.startswith(b"\xff\xd8") else "image/png"
    return Avatar(
        url=_data_url(data, mime),
        id=picture_id,
        type="preview" if preview else "image",
        direct_path=f"/sandbox/avatar/{jid}/{picture_id}",
    )


def _contacts(phone: str) -> list[ContactInfo]:
    from messaging.models import SandboxAccount

    account = SandboxAccount.objects.filter(phone=phone).first()
    if account is None:
        return []
    found = {
        a.jid: a for a in SandboxAccount.objects.filter(phone__in=[p.jid_user(j) for j in account.contacts])
    }
    out = []
    for jid in account.contacts:
        c = found.get(jid)
        if c is None:
            continue
        out.append(
            ContactInfo(
                jid=jid,
                first_name=c.push_name.split(" ")[0],
                full_name=c.push_name,
                push_name=c.push_name,
                business_name=c.verified_name,
            )
        )
    return out


def _check_numbers(phones: list[str]) -> list[OnWhatsApp]:
    from messaging.models import SandboxAccount

    if not phones:
        raise InvalidRequest(_noop("phones: at least one number is required"))
    out = []
    for query in phones:
        try:
            phone = p.normalize_phone(query)
        except ValueError:
            out.append(OnWhatsApp(query=query, jid="", is_in=False))
            continue
        account = SandboxAccount.objects.filter(phone=phone, registered=True).first()
        out.append(
            OnWhatsApp(
                query=query,
                jid=_user_jid(phone),
                is_in=account is not None,
                verified_name=account.verified_name if account else "",
            )
        )
    return out


def _business_profile(jid: str) -> BusinessProfile:
    from messaging.models import SandboxAccount

    jid = _jid(jid)
    account = SandboxAccount.objects.filter(phone=p.jid_user(jid), registered=True).first()
    if account is None:
        raise NotFound(_noop("%(number)s is not on WhatsApp.") % {"number": p.jid_user(jid)})
    if not account.business:
        # What WhatsApp (and the peer server) answers for a personal account: an empty profile, not an error.
        return BusinessProfile(jid=account.jid)
    b = account.business
    return BusinessProfile(
        jid=account.jid,
        email=b.get("email", ""),
        address=b.get("address", ""),
        description=b.get("description", ""),
        website=list(b.get("website", [])),
        categories=list(b.get("categories", [])),
    )


def _newsletters(jid: str) -> list[Newsletter]:
    from messaging.models import SandboxNewsletter

    return [
        Newsletter(
            jid=n.jid, name=n.name, description=n.description, subscribers=n.subscribers, role="subscriber"
        )
        for n in SandboxNewsletter.objects.order_by("id")
        if jid in n.followers
    ]


def _download(ref: dict) -> bytes:
    from messaging.models import SandboxMedia

    token = (ref or {}).get("sandbox") if isinstance(ref, dict) else None
    if not token:
        raise InvalidRequest(_noop("ref: not a sandbox media reference"))
    row = SandboxMedia.objects.filter(token=token).first()
    if row is None:
        raise NotFound(_noop("This media is no longer available."))
    return bytes(row.data)


def _privacy_of(phone: str) -> dict:
    from messaging.models import SandboxAccount

    account = SandboxAccount.objects.filter(phone=phone).first()
    return {**DEFAULT_PRIVACY, **(account.privacy if account else {})}


# The simulated posts of every newsletter: numbered 1..N, one a day before a fixed moment (deterministic).
SANDBOX_NEWSLETTER_POSTS = 30
_POSTS_END = 1_764_000_000.0


def _newsletter_messages(jid: str, count: int, before: int) -> list[NewsletterPost]:
    from messaging.models import SandboxNewsletter

    newsletter = SandboxNewsletter.objects.filter(jid=jid).first()
    if newsletter is None:
        raise NotFound(_noop("%(jid)s is not a newsletter.") % {"jid": jid})
    last = min(before - 1, SANDBOX_NEWSLETTER_POSTS) if before > 0 else SANDBOX_NEWSLETTER_POSTS
    first = max(1, last - count + 1)
    return [
        NewsletterPost(
            server_id=n,
            text=f"{newsletter.name} #{n}",
            timestamp=_POSTS_END - (SANDBOX_NEWSLETTER_POSTS - n) * 86400,
            views=newsletter.subscribers // (1 + SANDBOX_NEWSLETTER_POSTS - n),
            reactions={"👍": n % 7} if n % 7 else {},
        )
        for n in range(first, last + 1)
    ]
