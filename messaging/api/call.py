"""POST /call/reject: decline a ringing call on the chosen number."""

from __future__ import annotations

from ninja import Router, Schema
from pydantic import Field

from messaging.api.common import AUTH, Envelope, acting, ok
from messaging.api.fields import Jid
from messaging.services import calls

router = Router(tags=["call"], auth=AUTH)


class RejectIn(Schema):
    caller_jid: Jid = Field(description="Who is calling, as the call.offer webhook named them.")
    call_id: str = Field(
        min_length=1, max_length=128, pattern=r"^\S+$", description="The call.offer's call_id."
    )


@router.post("/call/reject", response=Envelope, summary="Reject an incoming call")
def reject(request, payload: RejectIn):
    caller = payload.caller_jid
    ctx = acting(request, write=True)
    calls.reject_call(caller=caller, call_id=payload.call_id, **ctx.service_kwargs())
    return ok({"caller_jid": caller, "call_id": payload.call_id}, "Call rejected.")
