"""A real HTTP receiver on loopback that checks every webhook with `standardwebhooks`.

It can misbehave the ways subscribers' endpoints do: answer any status with any headers, think
for a while, reset the connection (`RESET`), hold every answer until told (`hold`), or go down
and come back on the same port (`stop`, `start`).
"""

from __future__ import annotations

import socket
import struct
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


RESET = (0, {}, b"")  # a "response" that resets the connection (RST) instead of answering


@dataclass
class Receiver:
    url: str = ""
    port: int = 0
    secrets: list[str] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    responses: deque = field(default_factory=deque)  # (status, headers, body); then 200
    barrier: threading.Barrier | None = None
    delay_seconds: float = 0.0  # how long to think before answering
    hold: threading.Event | None = None  # when set up, every answer waits until it is set
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    def respond(self, *responses: tuple[int, dict, bytes]) -> None:
        self.responses.extend(responses)

    def reset_connections(self, times: int = 1) -> None:
        """Answer the next `times` requests by resetting the connection."""
        self.responses.extend([RESET] * times)

    def start(self) -> None:
        """Listen (again) on 127.0.0.1, on the same port as before if there was one."""
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        server.daemon_threads = True
        self.port = server.server_address[1]
        self.url = self.url or f"http://127.0.0.1:{self.port}/hooks"
        threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
        self.server = server

    def stop(self) -> None:
        """Go down: stop listening (connections are refused until `start`)."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def wait_for_requests(self, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.requests)} request(s) arrived, not {count}")
            time.sleep(0.01)

    @property
    def ids(self) -> list[str]:
        """The webhook-id of every request received, in order of arrival."""
        return [r.headers["webhook-id"] for r in self.requests]

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
                if receiver.hold is not None:
                    receiver.hold.wait(30)
                status, extra, reply = receiver.next_response()
            finally:
                with receiver.lock:
                    receiver.in_flight -= 1
            if (status, extra, reply) == RESET:
                # SO_LINGER 0: close() sends RST, no FIN and no answer
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                self.close_connection = True
                return
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


def _shut(receiver: Receiver) -> None:
    if receiver.hold is not None:
        receiver.hold.set()
    receiver.stop()


@pytest.fixture
def receiver():
    """A webhook receiver on 127.0.0.1; set `.secrets` to have each request verified."""
    state = Receiver()
    state.start()
    yield state
    _shut(state)


@pytest.fixture
def make_receiver():
    """A factory of more receivers like `receiver`, each on its own port."""
    made: list[Receiver] = []

    def make() -> Receiver:
        state = Receiver()
        state.start()
        made.append(state)
        return state

    yield make
    for state in made:
        _shut(state)


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
