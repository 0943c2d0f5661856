"""A real HTTP receiver on loopback that checks every webhook with `standardwebhooks`."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import insert
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tasks.database import begin
from tasks.models import Municipality
from tasks.settings import reset_settings


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    client_port: int
    verified: dict[str, bool]  # secret -> did Webhook(secret).verify accept it

    @property
    def signatures(self) -> list[str]:
        return self.headers["webhook-signature"].split(" ")


@dataclass
class Receiver:
    url: str = ""
    secrets: list[str] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    responses: deque = field(default_factory=deque)  # (status, headers, body); then 200
    barrier: threading.Barrier | None = None
    delay_seconds: float = 0.0  # how long to think before answering
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def respond(self, *responses: tuple[int, dict, bytes]) -> None:
        self.responses.extend(responses)

    def next_response(self) -> tuple[int, dict, bytes]:
        with self.lock:
            return self.responses.popleft() if self.responses else (200, {}, b"thanks")

    def verify(self, body: bytes, headers: dict[str, str]) -> dict[str, bool]:
        verified = {}
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers)
                verified[secret] = True
            except WebhookVerificationError:
                verified[secret] = False
        return verified


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive
        disable_nagle_algorithm = True

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            with receiver.lock:
                receiver.in_flight += 1
                receiver.max_in_flight = max(receiver.max_in_flight, receiver.in_flight)
            try:
                if receiver.barrier is not None:
                    receiver.barrier.wait()
                if receiver.delay_seconds:
                    time.sleep(receiver.delay_seconds)
                received = Received(
                    self.path, headers, body, self.client_address[1], receiver.verify(body, headers)
                )
                with receiver.lock:
                    receiver.requests.append(received)
                status, extra, reply = receiver.next_response()
            finally:
                with receiver.lock:
                    receiver.in_flight -= 1
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(reply)))
            self.end_headers()
            try:
                self.wfile.write(reply)
            except BrokenPipeError:  # the sender gave up waiting (the timeout tests): nothing to answer
                pass

        def log_message(self, format, *args) -> None:  # noqa: A002
            pass

    return Handler


@pytest.fixture
def receiver():
    """A webhook receiver on 127.0.0.1; set `.secrets` to have each request verified."""
    state = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def _allow_loopback_and_seed(monkeypatch) -> None:
    monkeypatch.setenv("WATERLINE_WEBHOOK_ALLOWED_NETWORKS", '["127.0.0.0/8"]')
    reset_settings()
    with begin() as conn:
        for municipality_id in ("riverton", "lakeside"):
            conn.execute(
                insert(Municipality).values(
                    id=municipality_id,
                    name=municipality_id.title(),
                    timezone="UTC",
                    standards=["WHO"],
                    regulator_emails=[],
                )
            )


@pytest.fixture
def allow_loopback(database, monkeypatch):
    """The database with two municipalities, loopback allow-listed (a test receiver needs it)."""
    _allow_loopback_and_seed(monkeypatch)
    return database


@pytest.fixture
def allow_loopback_postgres(postgres_database, monkeypatch):
    """Like `allow_loopback`, PostgreSQL only."""
    _allow_loopback_and_seed(monkeypatch)
    return postgres_database
