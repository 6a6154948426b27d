"""POST /newsletter/unfollow."""

from __future__ import annotations

from ninja import Router, Schema

from messaging.api.common import AUTH, Envelope, acting, ok
from messaging.api.fields import NewsletterJid
from messaging.services import profile

router = Router(tags=["newsletter"], auth=AUTH)


class UnfollowIn(Schema):
    newsletter_id: NewsletterJid


@router.post("/newsletter/unfollow", response=Envelope, summary="Stop following a newsletter")
def unfollow(request, payload: UnfollowIn):
    ctx = acting(request, write=True)
    newsletter = profile.unfollow_newsletter(newsletter=payload.newsletter_id, **ctx.service_kwargs())
    return ok({"newsletter_id": newsletter}, "Newsletter unfollowed.")
