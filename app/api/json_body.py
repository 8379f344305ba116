"""JSON request bodies: UTF-8 only, and whatever cannot be parsed is a 422 naming `body`.

FastAPI turns only `json.JSONDecodeError` into a validation error; invalid UTF-8, a number
past Python's digit limit or nesting past the recursion limit raise other errors, which it
answers with a bare 400. Routers that take JSON bodies use `JsonBodyRoute`, whose request
re-raises those as `JSONDecodeError`, so every malformed body gets the same 422 problem.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute


def parse_json(body: bytes) -> Any:
    """The JSON value of `body`; `json.JSONDecodeError` (with a reason) if it has none."""
    try:
        # RFC 8259: JSON exchanged between systems is UTF-8 (json.loads would guess UTF-16/32,
        # and let encoded surrogates through).
        return json.loads(body.decode("utf-8"))
    except json.JSONDecodeError:
        raise
    except UnicodeDecodeError as exc:
        reason = f"the body is not UTF-8 ({exc.reason} at byte {exc.start})"
        raise json.JSONDecodeError(reason, "", 0) from exc
    except ValueError as exc:  # int("9" * 5000): Python's guard against quadratic parsing
        reason = f"a number has more than {sys.get_int_max_str_digits()} digits"
        raise json.JSONDecodeError(reason, "", 0) from exc
    except RecursionError as exc:
        raise json.JSONDecodeError("the body is nested too deeply", "", 0) from exc


class JsonRequest(Request):
    """A request whose `json()` fails only with `json.JSONDecodeError`."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body())
        return self._json


class JsonBodyRoute(APIRoute):
    """An APIRoute whose endpoint reads its body through `JsonRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def with_json_request(request: Request) -> Response:
            return await handler(JsonRequest(request.scope, request.receive))

        return with_json_request
