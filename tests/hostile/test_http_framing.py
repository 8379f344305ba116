"""Body framing and malformed JSON against a real server (uvicorn), over raw sockets where
the request is one a well-behaved client library would refuse to send."""

from __future__ import annotations

import json
import socket
from typing import Any

import httpx
import pytest

from tests.hostile.test_junk_input import stored
from tests.security.conftest import bearer, run_spec

__all__ = ["stored"]  # runs and jobs are counted before and after each rejected request

MAX_BODY_BYTES = 64 * 1024  # the server's default CEREBROS_MAX_BODY_BYTES


def raw_post(base: str, token: str, headers: list[str], body: bytes) -> tuple[int, str, bytes]:
    """POST /runs as exactly these bytes; (status, content type, body) of the answer."""
    url = httpx.URL(base)
    assert url.host and url.port
    head = [
        "POST /runs HTTP/1.1",
        f"Host: {url.host}:{url.port}",
        f"Authorization: Bearer {token}",
        "Content-Type: application/json",
        "Connection: close",  # so that the answer ends with the connection
        *headers,
    ]
    with socket.create_connection((url.host, url.port), timeout=30) as sock:
        sock.sendall("\r\n".join(head).encode() + b"\r\n\r\n" + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    header_block, _, content = rest.partition(b"\r\n\r\n")
    fields = dict(
        line.decode().split(":", 1) for line in header_block.split(b"\r\n") if b":" in line
    )
    content_type = next((v.strip() for k, v in fields.items() if k.lower() == "content-type"), "")
    return int(status_line.split()[1]), content_type, content


def chunked(body: bytes, size: int = 8192) -> bytes:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def fields_of(content: bytes) -> list[str]:
    problem: dict[str, Any] = json.loads(content)
    return [e["field"] for e in problem["errors"]]


@pytest.mark.usefixtures("stored")
def test_chunked_body_over_the_limit_is_413_problem(live_api: str, live_token: str) -> None:
    # A little over the limit, sent at once: the server has read it all when it answers,
    # so closing the connection cannot reset it under the answer.
    body = json.dumps(run_spec(pad="x" * (MAX_BODY_BYTES + 4096))).encode()
    status, content_type, content = raw_post(
        live_api, live_token, ["Transfer-Encoding: chunked"], chunked(body)
    )
    assert status == 413, content
    assert content_type == "application/problem+json"
    assert fields_of(content) == ["body"]


def test_chunked_body_under_the_limit_is_accepted(live_api: str, live_token: str) -> None:
    body = json.dumps(run_spec()).encode()
    status, _, content = raw_post(
        live_api, live_token, ["Transfer-Encoding: chunked"], chunked(body, size=16)
    )
    assert status == 202, content


@pytest.mark.usefixtures("stored")
@pytest.mark.parametrize(
    "lengths",
    [["abc"], ["-1"], ["2", "3"], ["99999999999999999999999"]],
    ids=["abc", "negative", "conflicting", "huge"],
)
def test_bad_content_length_is_refused_by_the_server(
    live_api: str, live_token: str, lengths: list[str]
) -> None:
    """uvicorn's parser refuses these before the app runs, with its own plain-text 400.

    The app cannot shape that answer; what it does when another server passes such a header
    on is tests/api/test_input_contract.py::test_bad_content_length_is_400_naming_it.
    """
    headers = [f"Content-Length: {value}" for value in lengths]
    status, content_type, content = raw_post(live_api, live_token, headers, b"{}")
    assert status == 400
    assert content_type.startswith("text/plain") and content == b"Invalid HTTP request received."
    assert httpx.get(f"{live_api}/health", timeout=10).status_code == 200


@pytest.mark.usefixtures("stored")
@pytest.mark.parametrize(
    "content",
    [
        b'{"dataset_id": "iris", "budget": {"max_trials": ' + b"9" * 5000 + b"}}",
        b"[" * 10_000 + b"]" * 10_000,
        b'{"dataset_id": "ir\xffis"}',
    ],
    ids=["5000-digits", "10000-deep", "not-utf8"],
)
def test_malformed_json_is_422_naming_body(live_api: str, live_token: str, content: bytes) -> None:
    response = httpx.post(
        f"{live_api}/runs",
        content=content,
        headers={**bearer(live_token), "content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert fields_of(response.content) == ["body"]
