"""Mail over STARTTLS and implicit TLS (SSL), against a real SMTP server (aiosmtpd) with a
certificate of a private CA that `WATERLINE_SMTP_CA_FILE` trusts; an untrusted certificate is
refused with a sentence, never sent in the clear."""

from __future__ import annotations

import ipaddress
import socket
import ssl
from datetime import UTC, datetime, timedelta

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

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
def certificate(tmp_path):
    """A self-signed certificate for 127.0.0.1 (its own CA) and the server's TLS context."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smtp.riverton.test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
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
