"""Reads of the dashboard that take more than one query: the names of the people and chats a page shows,
fetched in bulk (one query per page, however many rows), so templates never look a name up one by one."""

from __future__ import annotations

from collections.abc import Iterable


def names_for(organization, jids: Iterable[str], *, device=None) -> dict[str, str]:
    """{jid: best known name} for the JIDs given: the address-book name, else the push or business name of a
    contact, else a chat's name (a group's subject, a peer's push name). JIDs with no name are left out."""
    from messaging.models import Chat, Contact

    wanted = {j for j in jids if j}
    if not wanted:
        return {}
    names: dict[str, str] = {}
    chats = Chat.objects.filter(organization=organization, jid__in=wanted).exclude(name="")
    contacts = Contact.objects.filter(organization=organization, jid__in=wanted)
    if device is not None:
        chats = chats.filter(device=device)
        contacts = contacts.filter(device=device)
    for jid, name in chats.values_list("jid", "name"):
        names.setdefault(jid, name)
    # Contacts last, and winning: the name the team saved beats the name a peer gave themselves.
    for jid, name, push_name, business_name in contacts.values_list(
        "jid", "name", "push_name", "business_name"
    ):
        best = name or push_name or business_name
        if best and (name or jid not in names):
            names[jid] = best
    return names


def name_chats(device, chats: list) -> list:
    """Put `known_name` on chats with no name of their own, from the number's contacts (one query)."""
    nameless = {c.jid for c in chats if not c.name}
    if nameless:
        found = {}
        for jid, name, push_name, business_name in device.contacts.filter(jid__in=nameless).values_list(
            "jid", "name", "push_name", "business_name"
        ):
            found[jid] = name or push_name or business_name
        for chat in chats:
            chat.known_name = found.get(chat.jid, "")
    return chats


RECIPIENTS_LIMIT = 500  # the picker's choices: the most recent chats, then other contacts; typing still works


def recipients(device) -> list[tuple[str, str]]:
    """Choices for a "to" field, as (what to send to, how a person knows it): recent chats first (groups by
    their subject), then the number's other contacts; two queries whatever their number."""
    from django.db.models.functions import Coalesce

    from messaging.templatetags.dashboard import jid_name, phone

    chats = list(
        device.chats.annotate(activity=Coalesce("last_message_at", "created_at"))
        .order_by("-activity", "-id")
        .only("jid", "name", "is_group")[:RECIPIENTS_LIMIT]
    )
    names = {c.jid: c.name for c in chats if c.name}
    jids = [c.jid for c in chats]
    seen = set(jids)
    for jid, name, push_name, business_name in device.contacts.order_by(
        "name", "push_name", "jid"
    ).values_list("jid", "name", "push_name", "business_name")[:RECIPIENTS_LIMIT]:
        best = name or push_name or business_name
        if best:
            names[jid] = best
        if jid not in seen:
            seen.add(jid)
            jids.append(jid)
    choices = []
    for jid in jids[:RECIPIENTS_LIMIT]:
        number = phone(jid)
        value = jid.split("@", 1)[0] if number else jid
        name = names.get(jid, "")
        label = f"{name} · {number}" if name and number else jid_name(jid, names)
        choices.append((value, label))
    return choices
