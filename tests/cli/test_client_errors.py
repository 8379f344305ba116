"""The client commands with no API to talk to: one line, not a traceback (unless --debug)."""

from __future__ import annotations

import os

from tests.cli.helpers import cerebros
from tests.support.processes import free_port


def env() -> dict[str, str]:
    return {**os.environ, "COLUMNS": "120"}


def test_api_down_is_one_line_and_exit_code_1() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for args in (["runs"], ["events", "0123abcd"], ["cancel", "0123abcd"], ["trials", "01"]):
        done = cerebros(env(), *args, "--url", url)
        assert done.returncode == 1, done.stderr
        assert done.stdout == ""
        assert done.stderr.splitlines() == [
            f"cannot reach the API at {url}: [Errno 111] Connection refused; "
            "is it running? (cerebros up)"
        ]


def test_a_wrong_url_is_one_line() -> None:
    done = cerebros(env(), "runs", "--url", "http://no-such-host.invalid:8000")
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("cannot reach the API at http://no-such-host.invalid:8000: ")


def test_debug_shows_the_traceback() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = cerebros(env(), "--debug", "runs", "--url", url)
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr
    assert "httpx.ConnectError" in done.stderr


def test_a_malformed_run_id_is_a_usage_error() -> None:
    done = cerebros(env(), "events", "not-an-id!", "--url", f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: 'not-an-id!' is not a run id (hex digits and dashes)"
    ]
