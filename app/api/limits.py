"""Request framing: a bad Content-Length is a 400 and a body over the limit a 413.

Both are answered before the app runs, so nothing is parsed, authenticated or stored for them.
"""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.problems import problem_response
from app.schemas.problems import FieldError


class BodySizeLimit:
    """Reads the whole request body (at most `max_bytes`) before handing the request on.

    The size is checked on the Content-Length when there is one and on the bytes received
    in any case: a chunked body has no length to check. It is read here, not counted as
    the app reads it, because FastAPI answers any error raised while it reads a body with
    a bare 400: a limit enforced inside the app's `receive` could never be a 413.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        streamed: frozenset[tuple[str, str]] = frozenset(),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # (method, path) of the routes that read their own body as it streams in and
        # enforce their own limit (dataset uploads): never buffered here.
        self.streamed = streamed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"]) in self.streamed:
            await self.app(scope, receive, send)
            return
        rejection = self._check_content_length(scope)
        if rejection is not None:
            await rejection(scope, receive, send)
            return
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away: nobody to answer
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_bytes:
                await self._too_large()(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    def _check_content_length(self, scope: Scope) -> Response | None:
        values = {value.strip() for name, value in scope["headers"] if name == b"content-length"}
        if not values:
            return None
        value = values.pop()
        if values or not value.isdigit():
            # uvicorn refuses these itself; another server or a proxy may pass them on.
            return problem_response(
                400,
                "Bad request",
                "Content-Length must be one non-negative integer",
                [FieldError(field="Content-Length", message="not a single non-negative integer")],
            )
        digits = value.lstrip(b"0") or b"0"
        if len(digits) > len(str(self.max_bytes)) or int(digits) > self.max_bytes:
            return self._too_large()
        return None

    def _too_large(self) -> Response:
        message = f"the request body is over the limit of {self.max_bytes} bytes"
        return problem_response(
            413, "Payload too large", message, [FieldError(field="body", message=message)]
        )


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the app the body read already, then the client's own messages.

    An SSE endpoint waits on those messages for the disconnect.
    """
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
