"""The body of a webhook: the event payload serialised once, thinned when it is too large."""

from __future__ import annotations

import json

from tasks.storage import object_store

MAX_PAYLOAD_BYTES = 20_000  # Standard Webhooks recommends staying under 20 kB


def serialize(payload: dict) -> bytes:
    """Compact JSON bytes; these exact bytes are signed and sent."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def full_payload_key(municipality_id: str, event_id: str) -> str:
    return f"webhooks/{municipality_id}/{event_id}.json"


def payload_body(municipality_id: str, event_id: str, payload: dict) -> bytes:
    """The body to send for an event: the payload itself, or under 20 kB a thin stand-in.

    A payload over the limit is written whole to object storage under
    `webhooks/<municipality_id>/<event_id>.json` and `data` becomes
    `{"truncated": true, "url": <its object URL>}`.
    """
    body = serialize(payload)
    if len(body) <= MAX_PAYLOAD_BYTES:
        return body
    store = object_store()
    key = full_payload_key(municipality_id, event_id)
    url = store.url(key) if store.exists(key) else store.put_bytes(key, body).url
    return serialize({**payload, "data": {"truncated": True, "url": url}})
