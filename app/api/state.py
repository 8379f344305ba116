"""What the API process holds for its lifetime: the shared `Runtime` and its event hub.

Built in the app's lifespan, kept on `app.state.cerebros`, read by the dependencies of
app/api/deps.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.events.hub import EventHub
from app.runtime import Runtime


@dataclass
class ApiRuntime(Runtime):
    """The runtime of an API process: the worker's resources plus the event hub.

    The hub is one LISTEN connection fanned out to every open stream.
    """

    hub: EventHub = field(kw_only=True)

    @classmethod
    def with_hub(cls, runtime: Runtime, hub: EventHub) -> ApiRuntime:
        """`runtime`'s resources, and `hub`."""
        return cls(
            runtime.settings,
            runtime.database_url,
            runtime.engine,
            runtime.sessions,
            runtime.queue,
            hub=hub,
        )


# The name routes and tests knew it by before the API and the worker shared one runtime.
ApiState = ApiRuntime
