"""The search-space part of a run's spec (pydantic only: the API imports it).

Both the Cerebros names (`minimum_levels`, ...) and the simple form (`layers`, `neurons`, ...)
are accepted and validated here, with bounds that keep every architecture buildable.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

__all__ = [
    "ACTIVATIONS",
    "FINAL_ACTIVATIONS",
    "MAX_LEVELS",
    "MAX_NEURONS",
    "MAX_UNITS_PER_LEVEL",
    "STRICT",
    "SearchSpace",
    "field_error",
]

#: Hidden-unit activations a search space may draw from (names understood by keras).
ACTIVATIONS: frozenset[str] = frozenset(
    {"relu", "elu", "gelu", "selu", "tanh", "sigmoid", "swish", "softsign", "softplus", "linear"}
)
#: Activations allowed on the output unit.
FINAL_ACTIVATIONS: frozenset[str] = frozenset({"softmax", "sigmoid", "linear"})

STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

MAX_LEVELS = 8
MAX_UNITS_PER_LEVEL = 8
MAX_NEURONS = 1024
#: Longest `layers` or `neurons` list of the simple form (as neurons_per_unit_choices).
_MAX_SIMPLE_LIST = 64


def field_error(
    model: str,
    field: str | tuple[str | int, ...],
    value: Any,
    kind: str,
    template: str,
    **context: Any,
) -> ValidationError:
    """A ValidationError located at `field`, for cross-field checks in model validators.

    A plain ValueError from a model validator is reported at the model's location, so the
    client would not learn which field is wrong; this puts the field name in `loc`.
    """
    return ValidationError.from_exception_data(
        model,
        [
            InitErrorDetails(
                type=PydanticCustomError(kind, template, context),
                loc=(field,) if isinstance(field, str) else field,
                input=value,
            )
        ],
    )


def _check_int_list(field: str, value: Any, bounds: tuple[int, int] | None = None) -> None:
    """The simple form's lists, as strictly as the canonical fields they stand for.

    They are renamed before field validation, so they are checked here, where an error can
    still name the field the client sent (``search_space.layers.1``).
    """
    model = SearchSpace.__name__
    if not isinstance(value, list) or not 1 <= len(value) <= _MAX_SIMPLE_LIST:
        raise field_error(
            model,
            field,
            value,
            "list_type",
            "{name} must be a list of 1 to {most} integers",
            name=field,
            most=_MAX_SIMPLE_LIST,
        )
    for index, item in enumerate(value):
        if type(item) is not int:  # bool is an int subclass, and is not a count
            raise field_error(
                model, (field, index), item, "int_type", "Input should be a valid integer"
            )
        if bounds is not None and not bounds[0] <= item <= bounds[1]:
            raise field_error(
                model,
                (field, index),
                item,
                "int_range",
                "Input should be between {low} and {high}",
                low=bounds[0],
                high=bounds[1],
            )


class SearchSpace(BaseModel):
    """The Cerebros search space (parameter names as in cerebros-core-algorithm-alpha).

    Levels: as in Cerebros, the number of levels *includes the output level* (level 0 is the
    input and is not counted). ``minimum_levels=1`` therefore allows a network whose only
    Dense level is the output. Bounds: levels 1..8, units per level 1..8, neurons 1..1024.

    Neurons: drawn uniformly from ``[minimum_neurons_per_unit, maximum_neurons_per_unit]``
    unless ``neurons_per_unit_choices`` is set, in which case drawn from that list.

    Learning rate: a list of values to choose from (uniformly, one per architecture). A range
    is expressed by listing the values wanted, e.g. ``[0.0003, 0.001, 0.003]``.

    Simple form (from the original scripts) is accepted and normalised::

        {"layers": [1, 2, 3], "neurons": [32, 64, 128], "activation": ["relu", "tanh"],
         "learning_rate": [0.001, 0.01]}

    ``layers`` counts *hidden* layers, so it maps to ``minimum_levels=min(layers)+1`` and
    ``maximum_levels=max(layers)+1`` (the +1 is the output level); ``neurons`` becomes
    ``neurons_per_unit_choices`` (with min/max set to its extremes) and units per level is
    fixed to 1 unless given, which reproduces a plain MLP search.
    """

    model_config = STRICT

    minimum_levels: int = Field(default=2, ge=1, le=MAX_LEVELS)
    maximum_levels: int = Field(default=4, ge=1, le=MAX_LEVELS)
    minimum_units_per_level: int = Field(default=1, ge=1, le=MAX_UNITS_PER_LEVEL)
    maximum_units_per_level: int = Field(default=3, ge=1, le=MAX_UNITS_PER_LEVEL)
    minimum_neurons_per_unit: int = Field(default=8, ge=1, le=MAX_NEURONS)
    maximum_neurons_per_unit: int = Field(default=64, ge=1, le=MAX_NEURONS)
    neurons_per_unit_choices: list[int] | None = Field(default=None, min_length=1, max_length=64)
    activation: list[str] = Field(default_factory=lambda: ["relu"], min_length=1, max_length=16)
    final_activation: str | None = None
    predecessor_level_connection_affinity_factor_first: float = Field(default=5.0, gt=0, le=100)
    predecessor_level_connection_affinity_factor_main: float = Field(default=0.7, gt=0, le=100)
    predecessor_level_connection_affinity_factor_decay_main: float = Field(
        default=0.7, gt=0, le=1, description="decay(d) = factor ** d for a level d levels up"
    )
    max_consecutive_lateral_connections: int = Field(default=7, ge=0, le=64)
    p_lateral_connection: float = Field(default=0.97, ge=0, le=1)
    num_lateral_connection_tries_per_unit: int = Field(default=1, ge=0, le=16)
    maximum_skip_connection_depth: int = Field(default=7, ge=1, le=MAX_LEVELS)
    learning_rate: list[float] = Field(default_factory=lambda: [0.001], min_length=1, max_length=32)
    # Rules of the real code that change the seeded sequence are off by default: a run stored
    # before they existed must draw the same architectures when it resumes. Setting each to
    # the value named in its description gives the real code's behaviour
    # (docs/cerebros_fidelity.md lists every remaining difference).
    activation_scope: Literal["unit", "network"] = Field(
        default="unit",
        description="draw the activation for each unit, or once per network (the real code "
        "uses one activation for every unit: 'network')",
    )
    predecessor_level_connection_affinity_factor_final_to_kminus1: int | None = Field(
        default=None,
        ge=1,
        le=16,
        description="the output unit first picks this many times the number of units of the "
        "level below it from that level, with replacement (the real code: 2); None: off",
    )
    orphan_repair: Literal["clipped", "cerebros"] = Field(
        default="clipped",
        description="where a unit no later level reads is wired to: 'clipped' draws a depth in "
        "1..maximum_skip_connection_depth and clips it to the output level; 'cerebros' draws "
        "the successor level uniformly at depth minimum_skip_connection_depth + 1 .. "
        "min(levels above, maximum_skip_connection_depth), or the next level when it is the "
        "only one (the real code)",
    )
    minimum_skip_connection_depth: int = Field(
        default=1,
        ge=1,
        le=MAX_LEVELS,
        description="orphan_repair 'cerebros' only: see there (the real code: 1)",
    )
    number_of_tries_per_architecture_moiety: int = Field(
        default=1,
        ge=1,
        le=64,
        description="how many wirings of each drawn moiety (levels, units, neurons, "
        "activations, learning rate) the random sequence gives in a row (the real code's "
        "number_of_tries_per_architecture_moity, default 1)",
    )
    optimizer: Literal["adamw", "adam"] = Field(
        default="adamw",
        description="the optimizer every candidate trains with (the real code: AdamW with "
        "weight decay 0.004)",
    )
    weight_decay: float = Field(default=0.004, ge=0, le=1, description="AdamW's weight decay")

    @model_validator(mode="before")
    @classmethod
    def _normalise_simple_form(cls, data: Any) -> Any:
        """Map the simple ``layers``/``neurons`` form onto the canonical Cerebros names."""
        if not isinstance(data, dict) or not ({"layers", "neurons"} & data.keys()):
            return data
        out = dict(data)
        layers = out.pop("layers", None)
        neurons = out.pop("neurons", None)
        if layers is not None:
            if "minimum_levels" in out or "maximum_levels" in out:
                raise ValueError("give either 'layers' or minimum_levels/maximum_levels")
            _check_int_list("layers", layers, (0, MAX_LEVELS - 1))
            out["minimum_levels"] = min(layers) + 1
            out["maximum_levels"] = max(layers) + 1
            out.setdefault("minimum_units_per_level", 1)
            out.setdefault("maximum_units_per_level", 1)
        if neurons is not None:
            if "neurons_per_unit_choices" in out:
                raise ValueError("give either 'neurons' or neurons_per_unit_choices")
            # Its bounds are neurons_per_unit_choices' own (and its errors name that field).
            _check_int_list("neurons", neurons)
            out["neurons_per_unit_choices"] = neurons
        return out

    @field_validator("activation")
    @classmethod
    def _known_activations(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - ACTIVATIONS)
        if unknown:
            raise ValueError(f"unknown activation(s) {unknown}; allowed: {sorted(ACTIVATIONS)}")
        return value

    @field_validator("final_activation")
    @classmethod
    def _known_final_activation(cls, value: str | None) -> str | None:
        if value is not None and value not in FINAL_ACTIVATIONS:
            raise ValueError(f"unknown final_activation; allowed: {sorted(FINAL_ACTIVATIONS)}")
        return value

    @field_validator("neurons_per_unit_choices")
    @classmethod
    def _neuron_choices_in_bounds(cls, value: list[int] | None) -> list[int] | None:
        if value is not None:
            if any(n < 1 or n > MAX_NEURONS for n in value):
                raise ValueError(f"each neuron count must be in 1..{MAX_NEURONS}")
            value = sorted(set(value))
        return value

    @field_validator("learning_rate")
    @classmethod
    def _learning_rates_in_bounds(cls, value: list[float]) -> list[float]:
        if any(not (0 < lr <= 10) or math.isnan(lr) for lr in value):
            raise ValueError("each learning rate must be in (0, 10]")
        return value

    @model_validator(mode="after")
    def _ranges_ordered(self) -> SearchSpace:
        if self.neurons_per_unit_choices is not None:
            # Keep min/max consistent with the choices so readers see the real range.
            self.minimum_neurons_per_unit = min(self.neurons_per_unit_choices)
            self.maximum_neurons_per_unit = max(self.neurons_per_unit_choices)
        for low, high in (
            ("minimum_levels", "maximum_levels"),
            ("minimum_units_per_level", "maximum_units_per_level"),
            ("minimum_neurons_per_unit", "maximum_neurons_per_unit"),
            ("minimum_skip_connection_depth", "maximum_skip_connection_depth"),
        ):
            if getattr(self, low) > getattr(self, high):
                raise field_error(
                    type(self).__name__,
                    low,
                    getattr(self, low),
                    "range_order",
                    "{low} must be <= {high}",
                    low=low,
                    high=high,
                )
        return self

    def draws_laterals(self) -> bool:
        """Whether sampling can make lateral connections at all."""
        return (
            self.p_lateral_connection > 0
            and self.num_lateral_connection_tries_per_unit > 0
            and self.max_consecutive_lateral_connections > 0
        )

    def neuron_choices(self) -> list[int]:
        """The neuron counts a unit may get, in increasing order."""
        if self.neurons_per_unit_choices is not None:
            return list(self.neurons_per_unit_choices)
        return list(range(self.minimum_neurons_per_unit, self.maximum_neurons_per_unit + 1))
