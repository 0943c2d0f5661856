"""Mail over STARTTLS and implicit TLS (SSL), against a real SMTP server (aiosmtpd) with a
certificate of a private CA that `WATERLINE_SMTP_CA_FILE` trusts; an untrusted certificate is
refused with a sentence, never sent in the clear."""

from __future__ import annotations

import ipaddress
import socket
import ssl

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from cryptography import x509

from tasks.mail import MailError, compose, send
from tasks.settings import Settings


class Inbox:
    def __init__(self) -> None:
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802, ANN001, ANN201
        self.envelopes.append((envelope, session.ssl is not None))
        return "250 Message accepted"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def certificate(tmp_path, self_signed_certificate):
    """A self-signed certificate for 127.0.0.1 (its own CA) and the server's TLS context."""
    cert_file, key_file = self_signed_certificate(tmp_path, x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return cert_file, context


class StartTlsController(Controller):
    def __init__(self, handler, context, **kwargs) -> None:  # noqa: ANN001
        self.tls = context
        super().__init__(handler, **kwargs)

    def factory(self):  # noqa: ANN201
        return SMTP(self.handler, tls_context=self.tls, require_starttls=True)


def message():  # noqa: ANN201
    return compose(
        sender="waterline@riverton.test", recipients=["regulator@riverton.test"], subject="Report", body="Hi"
    )


def test_starttls_upgrades_the_connection_before_sending(certificate):
    cert_file, context = certificate
    inbox = Inbox()
    port = free_port()
    controller = StartTlsController(inbox, context, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings = Settings(
            smtp_host="127.0.0.1", smtp_port=port, smtp_security="starttls", smtp_ca_file=cert_file
        )
        send(message(), settings)
    finally:
        controller.stop()
    assert len(inbox.envelopes) == 1 and inbox.envelopes[0][1] is True  # received over TLS


def test_ssl_sends_over_implicit_tls(certificate):
    cert_file, context = certificate
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, ssl_context=context)
    controller.start()
    try:
        settings = Settings(
            smtp_host="127.0.0.1", smtp_port=port, smtp_security="ssl", smtp_ca_file=cert_file
        )
        send(message(), settings)
    finally:
        controller.stop()
    assert len(inbox.envelopes) == 1


def test_an_untrusted_certificate_is_refused_with_a_sentence(certificate):
    _, context = certificate
    inbox = Inbox()
    port = free_port()
    controller = StartTlsController(inbox, context, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings = Settings(smtp_host="127.0.0.1", smtp_port=port, smtp_security="starttls")
        with pytest.raises(MailError) as raised:
            send(message(), settings)
    finally:
        controller.stop()
    assert f"127.0.0.1:{port}" in str(raised.value) and "certificate" in str(raised.value)
    assert inbox.envelopes == []  # nothing went out in the clear
