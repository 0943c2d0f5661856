"""Standard Webhooks v1 signatures: HMAC-SHA256 of `{id}.{timestamp}.{body}`, `whsec_` secrets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
MIN_SECRET_BYTES, MAX_SECRET_BYTES = 24, 64  # the range Standard Webhooks allows


class WebhookSecret(str):
    """A `whsec_` secret that hides itself in repr(), so a logged tuple or dict never shows it.

    `str(secret)` and f-strings still give the value: the command line prints it once, on purpose.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "WebhookSecret('whsec_***')"


def generate_secret() -> WebhookSecret:
    """A new endpoint secret: `whsec_` + base64 of 32 random bytes."""
    raw = secrets.token_bytes(SECRET_BYTES)
    return WebhookSecret(SECRET_PREFIX + base64.b64encode(raw).decode("ascii"))


def validate_secret(secret: str) -> WebhookSecret:
    """A secret a person supplied, checked: `whsec_` + base64 of 24 to 64 bytes.

    The error never repeats the value.
    """
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    size = len(_key(secret))
    if not MIN_SECRET_BYTES <= size <= MAX_SECRET_BYTES:
        raise ValueError(
            f"a webhook secret carries {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes after whsec_, "
            f"this one {size}"
        )
    return WebhookSecret(secret)


def _key(secret: str) -> bytes:
    """The HMAC key: the base64-DECODED bytes after `whsec_` (not the string itself)."""
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except ValueError:
        raise ValueError("webhook secret is not whsec_ followed by base64") from None
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64 HMAC-SHA256>` signature of the exact body bytes that are sent."""
    if "." in msg_id:
        raise ValueError("a webhook id must not contain '.'")
    signed = f"{msg_id}.{int(timestamp)}.".encode() + body
    mac = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


def signature_header(secrets_in_force: list[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one signature per secret, space-separated (rotation)."""
    if not secrets_in_force:
        raise ValueError("at least one secret is needed to sign a webhook")
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in secrets_in_force)


def secrets_in_force(
    secret: str, previous_secret: str | None, previous_expires_at: datetime | None, now: datetime
) -> list[str]:
    """The current secret, plus the previous one while its overlap window lasts."""
    if previous_secret and previous_expires_at is not None and previous_expires_at > now:
        return [secret, previous_secret]
    return [secret]
