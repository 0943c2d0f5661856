"""Outgoing mail: compose a message, send it through SMTP, or keep it as an .eml file.

The SMTP password is a SecretStr: it is only unwrapped for `login()` and never appears in a log
line or an exception; a failed send raises `MailError` naming host:port only.
"""

from __future__ import annotations

import smtplib
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from tasks.settings import Settings, get_settings
from tasks.storage import ObjectStore, StoredObject

RETRY_DELAYS_SECONDS = (5.0, 30.0)  # between attempts; only transient failures are retried


class MailError(RuntimeError):
    """Sending failed; the message names the server, never credentials."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class Attachment:
    filename: str
    data: bytes
    maintype: str = "application"
    subtype: str = "octet-stream"


def compose(
    *,
    sender: str,
    recipients: Sequence[str],
    subject: str,
    body: str,
    attachments: Sequence[Attachment] = (),
    headers: dict[str, str] | None = None,
    html: str | None = None,
) -> EmailMessage:
    """A plain-text message (with an HTML alternative when given), attachments, a Date and a
    Message-ID."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1].strip("> ") or None)
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    if html is not None:
        message.add_alternative(html, subtype="html")
    for item in attachments:
        message.add_attachment(
            item.data, maintype=item.maintype, subtype=item.subtype, filename=item.filename
        )
    return message


def _is_transient(exc: Exception) -> bool:
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return False
    return isinstance(exc, smtplib.SMTPServerDisconnected | OSError)


def send(message: EmailMessage, settings: Settings | None = None) -> None:
    """Send through the configured SMTP server (starttls, ssl or none; login when a username is
    set). Raises `MailError` with a plain sentence naming host:port only."""
    settings = settings or get_settings()
    host, port = settings.smtp_host, settings.smtp_port
    security = settings.smtp_security.lower()
    if security not in ("starttls", "ssl", "none"):
        raise MailError(
            f"unknown smtp_security {settings.smtp_security!r}: use starttls, ssl or none"
        )
    try:
        context = ssl.create_default_context()
        if settings.smtp_ca_file:
            context.load_verify_locations(cafile=settings.smtp_ca_file)
        if security == "ssl":
            client = smtplib.SMTP_SSL(host, port, timeout=settings.smtp_timeout_seconds, context=context)
        else:
            client = smtplib.SMTP(host, port, timeout=settings.smtp_timeout_seconds)
        with client:
            if security == "starttls":
                client.starttls(context=context)
            if settings.smtp_username:
                password = (
                    settings.smtp_password.get_secret_value() if settings.smtp_password else ""
                )
                client.login(settings.smtp_username, password)
            client.send_message(message)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one sentence without secrets
        reason = _reason(exc)
        raise MailError(
            f"sending mail through {host}:{port} failed: {reason}", transient=_is_transient(exc)
        ) from None


def _reason(exc: Exception) -> str:
    """What went wrong, in words that cannot carry credentials (no server or library text)."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return f"the server refused the login (SMTP {exc.smtp_code})"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return f"the server refused {len(exc.recipients)} recipient(s)"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"the server answered SMTP {exc.smtp_code}"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return "the server closed the connection"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            "the server's TLS certificate is not trusted (for a private CA, set WATERLINE_SMTP_CA_FILE "
            "to its PEM file)"
        )
    if isinstance(exc, ssl.SSLError):
        return "the TLS handshake failed"
    if isinstance(exc, TimeoutError):
        return "the connection timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "the connection was refused"
    if isinstance(exc, OSError):
        return f"a network error occurred ({type(exc).__name__})"
    return f"an unexpected {type(exc).__name__} occurred"


def send_with_retries(
    message: EmailMessage,
    settings: Settings | None = None,
    delays: Sequence[float] = RETRY_DELAYS_SECONDS,
) -> int:
    """`send`, retried after each of `delays` while the failure is transient; returns attempts."""
    for attempt in range(1, len(delays) + 2):
        try:
            send(message, settings)
            return attempt
        except MailError as exc:
            if not exc.transient or attempt > len(delays):
                raise
            time.sleep(delays[attempt - 1])
    raise AssertionError("unreachable")


def write_eml(store: ObjectStore, key: str, message: EmailMessage) -> StoredObject:
    """Keep the message as an .eml file in object storage (used when no SMTP server is set)."""
    return store.put_bytes(key, message.as_bytes())
