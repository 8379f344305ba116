"""The client follows the server's stream control events over real HTTP.

A small SSE server plays the API's side of the protocol: `stream.reconnect` (resume with
Last-Event-ID after `retry_ms`) and `stream.end` with reason `token_revoked`.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.client import CerebrosClient, StreamRevoked

RUN = uuid.uuid4()


def event(event_id: int) -> str:
    data = {"id": event_id, "run_id": str(RUN), "name": "cerebros.nas.trial.epoch",
            "payload": {}, "created_at": "2026-01-01T00:00:00Z"}  # fmt: skip
    return f"id: {event_id}\nevent: cerebros.nas.trial.epoch\ndata: {json.dumps(data)}\n\n"


def control(name: str, **data: object) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


class Script:
    """What the server sends to each successive connection; records Last-Event-ID."""

    def __init__(self, *bodies: str) -> None:
        self.bodies = list(bodies)
        self.resumed_from: list[str | None] = []


@pytest.fixture
def serve() -> Iterator[tuple[Script, str]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            script.resumed_from.append(self.headers.get("Last-Event-ID"))
            body = script.bodies.pop(0).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield script, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_reconnect_event_resumes_with_last_event_id(serve: tuple[Script, str]) -> None:
    script, base = serve
    script.bodies += [
        event(1) + control("stream.reconnect", reason="server_error", retry_ms=10),
        event(2) + control("stream.end", reason="complete"),
    ]
    ids = [e.id for e in CerebrosClient(base).events(RUN)]
    assert ids == [1, 2]
    assert script.resumed_from == [None, "1"]


def test_a_revoked_token_ends_the_stream_with_an_error(serve: tuple[Script, str]) -> None:
    script, base = serve
    script.bodies += [event(1) + control("stream.end", reason="token_revoked")]
    received = []
    with pytest.raises(StreamRevoked):
        for e in CerebrosClient(base).events(RUN):
            received.append(e.id)
    assert received == [1]
