"""The body of a webhook: the event payload serialised once, thinned when it is too large."""

from __future__ import annotations

import hashlib
import json

from tasks.settings import get_settings
from tasks.storage import object_store

MAX_PAYLOAD_BYTES = 20_000  # Standard Webhooks recommends staying under 20 kB


def serialize(payload: dict) -> bytes:
    """Compact JSON bytes; these exact bytes are signed and sent."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def full_payload_key(municipality_id: str, event_id: str) -> str:
    """Where the whole payload of a too-large event is kept in object storage."""
    return f"webhooks/{municipality_id}/{event_id}.json"


def payload_link(key: str, stored: bytes) -> dict:
    """The `data` that stands in for a too-large payload: where the whole copy is and how to check it.

    The URL is `public_base_url/<key>` when that setting is given (a store that receivers can
    reach through a gateway), else the object store's own URL.
    """
    base = get_settings().public_base_url
    url = f"{base.rstrip('/')}/{key}" if base else object_store().url(key)
    return {
        "truncated": True,
        "url": url,
        "sha256": hashlib.sha256(stored).hexdigest(),
        "size_bytes": len(stored),
    }


def payload_body(municipality_id: str, event_id: str, payload: dict) -> bytes:
    """The body to send for an event: the payload itself, or when over 20 kB a thin stand-in.

    A payload over the limit is written whole to object storage under
    `webhooks/<municipality_id>/<event_id>.json` (once: a retry links the copy already stored)
    and `data` becomes `{"truncated": true, "url", "sha256", "size_bytes"}` of that copy.
    """
    body = serialize(payload)
    if len(body) <= MAX_PAYLOAD_BYTES:
        return body
    store = object_store()
    key = full_payload_key(municipality_id, event_id)
    if store.exists(key):
        body = store.get_bytes(key)
    else:
        store.put_bytes(key, body)
    return serialize({**payload, "data": payload_link(key, body)})
