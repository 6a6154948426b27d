"""POST /newsletter/unfollow, GET /newsletter/messages."""

from __future__ import annotations

from datetime import UTC, datetime

from ninja import Query, Router, Schema
from pydantic import Field

from messaging.api.common import AUTH, Envelope, acting, done, ok
from messaging.api.fields import NewsletterJid
from messaging.services import profile

router = Router(tags=["newsletter"], auth=AUTH)


class UnfollowIn(Schema):
    newsletter_id: NewsletterJid


@router.post(
    "/newsletter/unfollow", response=Envelope, exclude_unset=True, summary="Stop following a newsletter"
)
def unfollow(request, payload: UnfollowIn):
    ctx = acting(request, write=True)
    newsletter = profile.unfollow_newsletter(newsletter=payload.newsletter_id, **ctx.service_kwargs())
    return done(f"Unfollowed {newsletter}.")


class MessagesQuery(Schema):
    newsletter_id: NewsletterJid
    count: int = Field(50, ge=1, le=100, description="How many posts (the newest), at most 100.")
    before: int = Field(0, ge=0, description="Only posts older than this server_id (0: the newest).")


def _post_row(post) -> dict:
    at = (
        datetime.fromtimestamp(post.timestamp, tz=UTC).isoformat().replace("+00:00", "Z")
        if post.timestamp
        else ""
    )
    row = {
        "server_id": post.server_id,
        "message_id": str(post.server_id),
        "type": post.kind,
        "timestamp": at,
        "views_count": post.views,
    }
    if post.reactions:
        row["reaction_counts"] = post.reactions
    if post.text:
        row["text"] = post.text
    return row


@router.get("/newsletter/messages", response=Envelope, summary="A newsletter's latest posts, from WhatsApp")
def messages(request, query: Query[MessagesQuery]):
    ctx = acting(request)
    posts = profile.newsletter_posts(
        newsletter=query.newsletter_id, count=query.count, before=query.before, **ctx.reader_kwargs()
    )
    return ok({"data": [_post_row(post) for post in posts]})
