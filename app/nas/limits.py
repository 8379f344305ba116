"""The cap on trainable parameters per architecture (issue 10, point 7).

Light on purpose (standard library only): `app.config` takes its default from here.

Why 5 000 000 by default: training holds about 16 bytes per trainable parameter (float32
weights, gradients and Adam's two moments), ~80 MB at the cap; measured, a 4.5 M-parameter
model raised a worker's peak RSS by under 300 MiB over an mnist-sized epoch, which leaves an
8 GiB worker ample room for the dataset (cifar10 is ~0.7 GB as float32) and torch itself.
Such a model still trains an mnist-sized epoch on one CPU thread in about two minutes
(docs/benchmarks.md, "Parameter cap"). The cap is 2.5x the largest network the default
search space can draw even on cifar10's 3072 inputs (2.02 M), so default searches never
meet it; the schema alone allows 1.7 billion parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_MAX_TRAINABLE_PARAMS", "SETTING", "ParamsCap"]

DEFAULT_MAX_TRAINABLE_PARAMS = 5_000_000
#: The environment variable that sets the service-wide cap (`Settings.max_trainable_params`).
SETTING = "CEREBROS_MAX_TRAINABLE_PARAMS"


@dataclass(frozen=True)
class ParamsCap:
    """The effective cap of one run and where it comes from (for messages saying what to change)."""

    limit: int
    service_limit: int

    @classmethod
    def for_run(cls, service_limit: int, run_limit: int | None) -> ParamsCap:
        """The service's cap, lowered (never raised) by the spec's ``parameters.max_params``."""
        limit = service_limit if run_limit is None else min(service_limit, run_limit)
        return cls(limit=limit, service_limit=service_limit)

    @property
    def source(self) -> str:
        if self.limit < self.service_limit:
            return "parameters.max_params"
        return SETTING

    def refusal(self, trainable: int) -> str | None:
        """Why an architecture with ``trainable`` parameters is not built, or None if it fits."""
        if trainable <= self.limit:
            return None
        return (
            f"{trainable:,} trainable parameters exceed the cap of {self.limit:,} "
            f"({self.source}); the architecture was not built"
        )

    def remedy(self, bounds: str) -> str:
        """What to change when architectures do not fit: the search space's bounds or the cap.

        The bounds are the search space's ``bounds`` (``"maximum"`` or ``"minimum"``); otherwise
        the cap itself.
        """
        if self.source == SETTING:
            raise_it = f"raise {SETTING}"
        else:
            raise_it = f"raise parameters.max_params (up to {SETTING}={self.service_limit:,})"
        return (
            f"lower {bounds}_neurons_per_unit, {bounds}_units_per_level or {bounds}_levels, "
            f"or {raise_it}"
        )
