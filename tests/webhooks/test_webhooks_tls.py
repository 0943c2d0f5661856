"""Over TLS the connection goes to the vetted IP while Host, SNI and the certificate check use
the host name (so no second DNS lookup can redirect it)."""

import asyncio
import ipaddress
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from cryptography import x509

from tasks.webhooks.addresses import Endpoint
from tasks.webhooks.sender import Outgoing, send_one
from tasks.webhooks.signing import generate_secret

HOST = "hooks.riverton.test"


@pytest.fixture
def tls_receiver(tmp_path, self_signed_certificate):
    cert_file, key_file = self_signed_certificate(tmp_path, x509.DNSName(HOST))
    seen: list[dict] = []
    names: list[str | None] = []

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    context.sni_callback = lambda _socket, name, _context: names.append(name)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):  # the TLS handshake happens in the connection's own thread
            self.request = context.wrap_socket(self.request, server_side=True)
            super().setup()

        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers["content-length"]))
            seen.append({"host": self.headers["host"], "sni": names[-1]})
            self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format, *args):  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    yield server.server_address[1], cert_file, seen
    server.shutdown()
    server.server_close()


def _send(port, cert_file, host):
    endpoint = Endpoint("https", host, port, "/hooks", ipaddress.ip_address("127.0.0.1"))
    item = Outgoing(1, "msg_tls", b"{}")

    async def go():
        verify = ssl.create_default_context(cafile=str(cert_file))
        async with httpx.AsyncClient(verify=verify, follow_redirects=False) as client:
            return await send_one(client, endpoint, [generate_secret()], item, 5)

    return asyncio.run(go())


def test_tls_connects_to_the_vetted_ip_with_the_host_name_for_sni_and_host(tls_receiver):
    port, cert_file, seen = tls_receiver
    result = _send(port, cert_file, HOST)
    assert (result.status_code, result.error) == (200, None)
    assert seen == [{"host": f"{HOST}:{port}", "sni": HOST}]


def test_tls_certificate_must_match_the_host_name(tls_receiver):
    port, cert_file, seen = tls_receiver
    result = _send(port, cert_file, "other.riverton.test")
    assert result.status_code is None and result.error == (
        "the endpoint's TLS certificate could not be verified"
    )
    assert seen == []
