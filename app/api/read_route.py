"""A route class for the hottest reads: the caller checked, the endpoint called, nothing else.

FastAPI solves every dependency of a route on every request (the router's `get_principal`,
its `bearer_scheme`, each declared parameter), and in the version we run that machinery
costs more CPU than the rest of a cached `GET /runs/{id}` (benchmarks/read_path.py). A
`CallerOnlyRoute` answers a request whose path parameters are canonical UUIDs by doing what
the solved dependencies would do, directly: read the bearer credentials, run
`get_principal` (401s, token cache) and `get_owner`, and call the endpoint with its UUIDs,
the request and the owner.

It does so only where that is exactly what FastAPI would do; anything else takes FastAPI's
own handler, unchanged:

- the route's dependencies are exactly `get_principal` (the router-level one that
  app/api/main.py installs; its only sub-dependency `bearer_scheme`) and the endpoint's
  `OwnerDep` (`get_owner`), and its other parameters are UUID path parameters and the
  request. This is checked once per inclusion, on the dependencies
  FastAPI itself would solve (its effective route context, which carries the router's
  dependencies: a private name of FastAPI's; where it is missing, no shortcut): a
  dependency added later turns the shortcut off;
- no dependency override is installed (tests);
- each path parameter is a canonical UUID (anything else: FastAPI validates and answers
  its 422 problem as always).

Errors raised here travel exactly as from FastAPI's handler: to the app's exception handlers
(401, 404, 503 problems).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Coroutine
from typing import Any, Final

import fastapi.routing
from fastapi import Request, Response
from fastapi.routing import APIRoute

from app.api.deps import bearer_scheme, get_owner, get_principal

_CANONICAL_UUID: Final = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class CallerOnlyRoute(APIRoute):
    """An APIRoute that skips FastAPI's dependency solving where it would only check the caller.

    For an endpoint `(uuid path parameters..., request: Request, owner: OwnerDep)` on a router
    included behind `get_principal`.
    """

    def get_route_handler(self) -> Handler:
        standard = super().get_route_handler()
        # Included routes carry their router's dependencies in FastAPI's effective route
        # context (private; without it, no shortcut).
        context_var = getattr(fastapi.routing, "_effective_route_context_var", None)
        context = context_var.get() if context_var is not None else None
        if context is None or getattr(context, "original_route", None) is not self:
            return standard
        dependant = getattr(context, "dependant", None)
        if dependant is None:
            return standard
        calls = [d.call for d in dependant.dependencies]
        shortcut = (
            calls == [get_principal, get_owner]
            and [d.call for d in dependant.dependencies[0].dependencies] == [bearer_scheme]
            and [d.call for d in dependant.dependencies[1].dependencies] == [get_principal]
            and isinstance(dependant.dependencies[1].name, str)
            and not (dependant.query_params or dependant.header_params)
            and not (dependant.cookie_params or dependant.body_params)
            and dependant.request_param_name is not None
            and all(p.field_info.annotation is uuid.UUID for p in dependant.path_params)
        )
        if not shortcut:
            return standard
        names = [p.name for p in dependant.path_params]
        request_name: str = dependant.request_param_name
        owner_name = str(dependant.dependencies[1].name)
        endpoint = self.endpoint

        async def handler(request: Request) -> Response:
            if request.app.dependency_overrides:
                return await standard(request)
            values: dict[str, Any] = {}
            for name in names:
                raw = request.path_params.get(name)
                if not isinstance(raw, str) or not _CANONICAL_UUID.fullmatch(raw):
                    return await standard(request)
                values[name] = uuid.UUID(raw)
            principal = await get_principal(request, await bearer_scheme(request))
            values[request_name] = request
            values[owner_name] = await get_owner(principal)
            response: Response = await endpoint(**values)
            return response

        return handler
