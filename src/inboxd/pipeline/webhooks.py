"""The ``webhook_delivery`` job: POST one delivery, signed, through the guarded client.

A receiver checks ``X-Inboxd-Signature: t=<unix time>,v1=<hex>`` by computing
HMAC-SHA256 of ``"<t>.<raw body>"`` with the webhook's secret, comparing in constant time and
refusing an old ``t`` (replays). A 2xx answer is delivered; anything else, a redirect
included (never followed), is retried with the queue's backoff until the job's attempts run
out. An address the guarded client refuses (private, unless allow-listed) fails at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from pydantic import BaseModel, Field

from inboxd.errors import PermanentError, RetryableError
from inboxd.jobs.progress import TaskContext
from inboxd.jobs.registry import task
from inboxd.net.guarded import GuardedClient, Refused
from inboxd.store.webhooks import DELIVERY_KIND, Webhooks
from inboxd.vocabulary import Step

SIGNATURE_HEADER = "X-Inboxd-Signature"
EVENT_HEADER = "X-Inboxd-Event"
DELIVERY_HEADER = "X-Inboxd-Delivery"

#: Most of an answer's error text kept in the delivery log.
_MAX_ERROR = 500


class DeliveryParams(BaseModel, extra="forbid"):
    """Parameters of ``webhook_delivery``."""

    delivery_id: int = Field(ge=1)


def body_of(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed) for a payload."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Inboxd-Signature`` value for ``body`` sent at ``timestamp``."""
    signed = str(timestamp).encode() + b"." + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@task(DELIVERY_KIND, params=DeliveryParams)
def deliver(ctx: TaskContext, params: DeliveryParams) -> dict[str, Any]:
    """Send one webhook delivery; retried with backoff while the receiver does not say 2xx."""
    store = Webhooks(ctx.engine, ctx.settings)
    outgoing = store.outgoing(params.delivery_id)
    if outgoing is None:
        return {"delivery_id": params.delivery_id, "status": "webhook removed"}
    delivery = outgoing.delivery
    if not outgoing.enabled and delivery.event != "webhook.test":
        store.give_up(delivery, "the webhook was disabled before this delivery was sent")
        return {"delivery_id": delivery.id, "status": "webhook disabled"}
    ctx.progress.step(Step.DELIVERING)
    body = body_of(delivery.payload)
    headers = {
        "Content-Type": "application/json",
        EVENT_HEADER: delivery.event,
        DELIVERY_HEADER: str(delivery.id),
        SIGNATURE_HEADER: signature(outgoing.secret, int(time.time()), body),
    }
    status_code: int | None = None
    retryable = True
    with GuardedClient(ctx.settings) as client:
        try:
            answer = client.post(outgoing.url, body, headers)
        except Refused as exc:
            error: str | None = str(exc)[:_MAX_ERROR]
            retryable = exc.retryable
        else:
            status_code = answer.status
            if answer.ok:
                error = None
            elif answer.location is not None:
                error = f"HTTP {answer.status} redirect to {answer.location[:200]} (not followed)"
            else:
                error = f"HTTP {answer.status}"
    final = error is not None and (not retryable or ctx.attempt >= ctx.job.max_attempts)
    store.record_attempt(delivery, status_code=status_code, error=error, final=final)
    if error is None:
        return {"delivery_id": delivery.id, "status": "delivered", "status_code": status_code}
    if not retryable:
        raise PermanentError(f"webhook delivery {delivery.id} refused: {error}")
    raise RetryableError(f"webhook delivery {delivery.id}: {error}")
