"""The Cerebros search space: sample dense multi-level architectures (no keras here).

An architecture has levels 1..L of parallel units; level 0 is the input (one unit) and
level L is the output level (one unit whose width is fixed by the task). Connection rules,
following cerebros-core-algorithm-alpha (`units.py`, `levels.py`):

* Predecessors: a unit on level k picks, from EVERY earlier level j (0 = input),
  ``ceil(affinity * decay(k - j) * n_units(j))`` units uniformly *with replacement*, where
  ``affinity`` is ``..._factor_first`` for units on level 1 (no decay, as in Cerebros) and
  ``..._factor_main`` otherwise, and ``decay(d) = ..._decay_main ** d``. Because affinity > 0
  and ceil, every level gets at least one pick. Repeated picks are collapsed (concatenating
  the same tensor twice only adds redundant weights), so a unit lists each predecessor once.
* Lateral: a unit tries to connect to each lower-index unit of its own level at distance d
  (nearest first), ``num_lateral_connection_tries_per_unit`` times, with probability
  ``p_lateral_connection * 0.95 ** d``; after ``max_consecutive_lateral_connections``
  consecutive successes further tries fail, and a miss resets the run (Cerebros'
  `select_connection_or_not`). Cerebros indexes the candidate by the distance (so unit 0 is
  never a target); we use the intended unit at that distance.
* Final unit (``predecessor_level_connection_affinity_factor_final_to_kminus1``, off unless
  set): the output unit first picks ``factor * n_units(L - 1)`` units of level L - 1 with
  replacement, then makes the picks above (Cerebros' `FinalDenseUnit`).
* Orphan repair: a unit that no unit on a later level uses is added as a predecessor of a
  random unit on a later level, so every unit feeds the output. ``orphan_repair="clipped"``
  (the default): level ``min(k + depth, L)`` with depth drawn from
  ``1..maximum_skip_connection_depth``; ``"cerebros"``: Cerebros' `Level.resolve_successor_
  connectivity_errors`, depth uniform in ``minimum_skip_connection_depth + 1 ..
  min(L - k, maximum_skip_connection_depth)`` (depth 1 when level k + 1 is the only later one).
* Moieties: `architectures` draws a moiety (levels, units, neurons, activations, learning
  rate), then ``number_of_tries_per_architecture_moiety`` wirings of it in a row.

`sample_shape` draws the moiety and `wire` its connections (both from one ``rng``, in that
order), so a strategy that chooses the shape itself (TPE, mutations) wires it by the same
rules; `architecture_errors` checks an architecture against them.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.nas.spec import SearchSpace

__all__ = [
    "Architecture",
    "Head",
    "Predecessors",
    "Shape",
    "Unit",
    "architecture_errors",
    "architectures",
    "assemble",
    "head_for",
    "lateral_picks",
    "predecessor_picks",
    "repair_orphans",
    "sample_architecture",
    "sample_shape",
    "smallest_trainable_params",
    "wire",
]

#: Lateral-connection probability decays by this factor per unit of distance (Cerebros).
LATERAL_DECAY = 0.95


@dataclass(frozen=True)
class Head:
    """Output layer and loss for a task: what the output level must look like."""

    output_dim: int
    activation: str
    loss: str


def head_for(task: str, n_classes: int, final_activation: str | None) -> Head:
    """The output head for a task.

    Binary classification uses one sigmoid unit and binary cross-entropy unless a softmax
    is asked for; multi-class uses ``n_classes`` outputs with sparse categorical
    cross-entropy (a ``linear`` final activation means logits); regression one output, MSE.
    """
    if task == "regression":
        return Head(1, final_activation or "linear", "mse")
    if n_classes == 2 and final_activation in (None, "sigmoid"):
        return Head(1, "sigmoid", "binary_crossentropy")
    activation = final_activation or "softmax"
    if activation == "sigmoid":  # sigmoid over >2 exclusive classes does not fit sparse CE
        activation = "softmax"
    return Head(n_classes, activation, "sparse_categorical_crossentropy")


@dataclass(frozen=True)
class Unit:
    """One dense unit: width, activation and the (level, unit) pairs it reads from.

    ``predecessors`` is sorted and includes lateral ones (same level, lower unit index).
    """

    neurons: int
    activation: str
    predecessors: tuple[tuple[int, int], ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "neurons": self.neurons,
            "activation": self.activation,
            "predecessors": [list(p) for p in self.predecessors],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Unit:
        return cls(
            neurons=int(data["neurons"]),
            activation=str(data["activation"]),
            predecessors=tuple(sorted((int(a), int(b)) for a, b in data["predecessors"])),
        )


@dataclass(frozen=True)
class Architecture:
    """A sampled network. ``levels[i]`` is level ``i + 1``; the last level is the output."""

    input_dim: int
    levels: tuple[tuple[Unit, ...], ...]
    learning_rate: float
    loss: str = "mse"

    @property
    def n_levels(self) -> int:
        """Number of Dense levels including the output level (Cerebros' num_levels)."""
        return len(self.levels)

    @property
    def output_unit(self) -> Unit:
        return self.levels[-1][0]

    def units_on(self, level: int) -> int:
        """How many units level ``level`` has (level 0 is the single input)."""
        return 1 if level == 0 else len(self.levels[level - 1])

    def unit(self, level: int, index: int) -> Unit:
        return self.levels[level - 1][index]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form; `from_dict` inverts it exactly."""
        return {
            "input_dim": self.input_dim,
            "learning_rate": self.learning_rate,
            "loss": self.loss,
            "levels": [[u.to_dict() for u in level] for level in self.levels],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Architecture:
        return cls(
            input_dim=int(data["input_dim"]),
            learning_rate=float(data["learning_rate"]),
            loss=str(data.get("loss", "mse")),
            levels=tuple(tuple(Unit.from_dict(u) for u in level) for level in data["levels"]),
        )

    def fingerprint(self) -> str:
        """Hash of the canonical structure: equal architectures have equal fingerprints."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:20]

    def width(self, level: int, index: int) -> int:
        """Output width of a unit (level 0 is the input)."""
        return self.input_dim if level == 0 else self.unit(level, index).neurons

    def input_width(self, unit: Unit) -> int:
        """Width of what ``unit`` reads: its predecessors' widths, concatenated."""
        return sum(self.width(lv, ix) for lv, ix in unit.predecessors)

    def params_count(self) -> int:
        """Parameters of the built model (``model.count_params()``), from the structure alone.

        Per unit with input width w and n neurons: BatchNormalization 4w (gamma, beta,
        moving mean and variance) plus Dense w*n + n.
        """
        return sum(
            4 * (w := self.input_width(unit)) + w * unit.neurons + unit.neurons
            for level in self.levels
            for unit in level
        )

    def trainable_params_count(self) -> int:
        """Trainable parameters of the built model, from the structure alone.

        As `params_count` without the BatchNormalization moving statistics: 2w + w*n + n
        per unit. This is what the optimizer holds state for, so what the cap limits.
        """
        return sum(
            _unit_trainable(self.input_width(unit), unit.neurons)
            for level in self.levels
            for unit in level
        )

    def hyperparameters(self) -> dict[str, Any]:
        """Summary numbers recorded with a trial."""
        return {
            "learning_rate": self.learning_rate,
            "n_levels": self.n_levels,
            "units_per_level": [len(level) for level in self.levels],
            "neurons": [[u.neurons for u in level] for level in self.levels],
            "activations": sorted({u.activation for level in self.levels for u in level}),
        }


def _unit_trainable(width: int, neurons: int) -> int:
    """BatchNormalization gamma and beta (2 per input) plus the Dense kernel and bias."""
    return 2 * width + width * neurons + neurons


def smallest_trainable_params(space: SearchSpace, *, input_dim: int, head: Head) -> int:
    """The fewest trainable parameters any architecture of ``space`` can have (exact).

    Fewer levels, fewer units, fewer neurons and fewer connections all cost less, so the
    smallest network has ``minimum_levels`` levels of ``minimum_units_per_level`` units of the
    smallest neuron count, and each unit reads one unit of every earlier level (the fewest
    the sampler allows: repeated picks collapse and lateral tries may all miss). Every unit
    of level L-2 and below is then read by some later unit, since each has at least
    ``minimum_units_per_level + 1`` readers; on level L-1 only the output unit reads, so the
    other ``minimum_units_per_level - 1`` units are wired into it by orphan repair.
    """
    levels = space.minimum_levels
    units = space.minimum_units_per_level
    neurons = space.neuron_choices()[0]
    hidden = sum(
        units * _unit_trainable(input_dim + (level - 1) * neurons, neurons)
        for level in range(1, levels)
    )
    output_width = input_dim if levels == 1 else input_dim + (levels - 2 + units) * neurons
    return hidden + _unit_trainable(output_width, head.output_dim)


def predecessor_count(space: SearchSpace, level: int, source_level: int, n_source: int) -> int:
    """How many picks (with replacement) a unit on ``level`` makes from ``source_level``.

    ``ceil(first * n)`` for units on level 1, else ``ceil(main * decay**(level - source) * n)``;
    at least 1 (Cerebros' "ceil" rounding rule never returns 0 for a positive affinity).
    """
    if level == 1:
        wanted = space.predecessor_level_connection_affinity_factor_first * n_source
    else:
        decay = space.predecessor_level_connection_affinity_factor_decay_main ** (
            level - source_level
        )
        wanted = space.predecessor_level_connection_affinity_factor_main * decay * n_source
    # The epsilon keeps float noise (0.7 * 10 = 7.000000000000001) from adding a pick.
    return max(1, math.ceil(wanted - 1e-9))


def predecessor_picks(
    space: SearchSpace, rng: np.random.Generator, level: int, counts: Sequence[int]
) -> set[tuple[int, int]]:
    """Cerebros' per-level predecessor picks for one unit on ``level``."""
    picks: set[tuple[int, int]] = set()
    for j in range(level):
        n_j = counts[j]
        n_picks = predecessor_count(space, level, j, n_j)
        for index in rng.integers(0, n_j, size=n_picks):
            picks.add((j, int(index)))
    return picks


def lateral_picks(
    space: SearchSpace, rng: np.random.Generator, level: int, unit: int
) -> set[tuple[int, int]]:
    """Lateral connections of ``unit`` to lower-index units on its own level."""
    picks: set[tuple[int, int]] = set()
    consecutive = 0
    for distance in range(1, unit + 1):
        for _ in range(space.num_lateral_connection_tries_per_unit):
            p = space.p_lateral_connection * LATERAL_DECAY**distance
            draw = float(rng.random())  # always drawn, so the stream does not depend on caps
            if consecutive < space.max_consecutive_lateral_connections and draw <= p:
                consecutive += 1
                picks.add((level, unit - distance))
            else:
                consecutive = 0
    return picks


@dataclass(frozen=True)
class Shape:
    """A moiety: the drawn structure before wiring.

    ``levels[i]`` holds level ``i + 1``'s units as ``(neurons, activation)``; the last level
    is the output unit.
    """

    levels: tuple[tuple[tuple[int, str], ...], ...]
    learning_rate: float

    @property
    def counts(self) -> list[int]:
        """Units per level, level 0 (the input) included."""
        return [1] + [len(level) for level in self.levels]

    @classmethod
    def of(cls, arch: Architecture) -> Shape:
        """The moiety of ``arch`` (its wiring left out)."""
        return cls(
            levels=tuple(tuple((u.neurons, u.activation) for u in level) for level in arch.levels),
            learning_rate=arch.learning_rate,
        )


#: Per level (index 0 is level 1), per unit: the (level, unit) pairs it reads.
Predecessors = list[list[set[tuple[int, int]]]]


def _draw(rng: np.random.Generator, choices: Sequence[Any]) -> Any:
    return choices[int(rng.integers(len(choices)))]


def sample_shape(
    space: SearchSpace, rng: np.random.Generator, *, head: Head
) -> tuple[tuple[tuple[int, str], ...], ...]:
    """Draw a moiety's levels: how many, how many units each, their neurons and activation.

    The learning rate is drawn after the wiring (`sample_architecture`), as it always was.
    """
    n_levels = int(rng.integers(space.minimum_levels, space.maximum_levels + 1))
    neuron_choices = space.neuron_choices()
    network_activation = (
        str(_draw(rng, space.activation)) if space.activation_scope == "network" else None
    )
    shapes: list[tuple[tuple[int, str], ...]] = []
    for level in range(1, n_levels + 1):
        if level == n_levels:
            shapes.append(((head.output_dim, head.activation),))
            continue
        n_units = int(
            rng.integers(space.minimum_units_per_level, space.maximum_units_per_level + 1)
        )
        units = []
        for _ in range(n_units):
            neurons = int(_draw(rng, neuron_choices))
            activation = network_activation or str(_draw(rng, space.activation))
            units.append((neurons, activation))
        shapes.append(tuple(units))
    return tuple(shapes)


def wire(space: SearchSpace, rng: np.random.Generator, counts: Sequence[int]) -> Predecessors:
    """Cerebros' connections for levels of ``counts`` units (``counts[0]`` is the input).

    Predecessor picks and lateral connections, unit by unit, then orphan repair.
    """
    n_levels = len(counts) - 1
    final_factor = space.predecessor_level_connection_affinity_factor_final_to_kminus1
    preds: Predecessors = []
    for level in range(1, n_levels + 1):
        level_preds = []
        for unit in range(counts[level]):
            picks: set[tuple[int, int]] = set()
            if level == n_levels and final_factor is not None:
                below = counts[level - 1]
                for index in rng.integers(0, below, size=final_factor * below):
                    picks.add((level - 1, int(index)))
            picks |= predecessor_picks(space, rng, level, counts)
            picks |= lateral_picks(space, rng, level, unit)
            level_preds.append(picks)
        preds.append(level_preds)
    repair_orphans(space, rng, preds, counts)
    return preds


def _orphan_target_level(
    space: SearchSpace, rng: np.random.Generator, level: int, n_levels: int
) -> int:
    """The later level an orphan on ``level`` is wired into (`repair_orphans`)."""
    if space.orphan_repair == "clipped":
        depth = int(rng.integers(1, space.maximum_skip_connection_depth + 1))
        return min(level + depth, n_levels)
    # Cerebros: an index into the later levels (0 is level + 1), drawn from
    # arange(min(n - 1, min_depth), min(n, max_depth)). Where that range is empty (the
    # real code then fails), the deepest allowed level.
    n_later = n_levels - level
    low = min(n_later - 1, space.minimum_skip_connection_depth)
    high = min(n_later, space.maximum_skip_connection_depth)
    index = int(rng.integers(low, high)) if high > low else high - 1
    return level + 1 + index


def repair_orphans(
    space: SearchSpace, rng: np.random.Generator, preds: Predecessors, counts: Sequence[int]
) -> None:
    """Wire every unit that no later level reads into a unit of a later level (in place)."""
    n_levels = len(counts) - 1
    for level in range(1, n_levels):
        for unit in range(counts[level]):
            used = any(
                (level, unit) in p for later in preds[level:] for p in later
            )  # preds[level] holds level + 1
            if used:
                continue
            target_level = _orphan_target_level(space, rng, level, n_levels)
            target_unit = int(rng.integers(counts[target_level]))
            preds[target_level - 1][target_unit].add((level, unit))


def assemble(
    levels: Sequence[Sequence[tuple[int, str]]],
    preds: Predecessors,
    *,
    input_dim: int,
    learning_rate: float,
    head: Head,
) -> Architecture:
    """The architecture of a moiety's ``levels`` wired by ``preds``."""
    return Architecture(
        input_dim=input_dim,
        levels=tuple(
            tuple(
                Unit(neurons=n, activation=a, predecessors=tuple(sorted(preds[li][ui])))
                for ui, (n, a) in enumerate(level)
            )
            for li, level in enumerate(levels)
        ),
        learning_rate=learning_rate,
        loss=head.loss,
    )


def sample_architecture(
    space: SearchSpace,
    rng: np.random.Generator,
    *,
    input_dim: int,
    head: Head,
) -> Architecture:
    """Draw one architecture from ``space`` using ``rng`` (deterministic given its state)."""
    levels = sample_shape(space, rng, head=head)
    preds = wire(space, rng, [1] + [len(level) for level in levels])
    learning_rate = float(_draw(rng, space.learning_rate))
    return assemble(levels, preds, input_dim=input_dim, learning_rate=learning_rate, head=head)


def architectures(
    space: SearchSpace, seed: int, *, input_dim: int, head: Head
) -> Iterator[Architecture]:
    """The endless, seeded sequence of architectures: same seed, same sequence."""
    rng = np.random.default_rng(seed)
    tries = space.number_of_tries_per_architecture_moiety
    while True:
        first = sample_architecture(space, rng, input_dim=input_dim, head=head)
        yield first
        levels = Shape.of(first).levels
        counts = [1] + [len(level) for level in levels]
        for _ in range(tries - 1):  # the moiety's other wirings
            preds = wire(space, rng, counts)
            yield assemble(
                levels, preds, input_dim=input_dim, learning_rate=first.learning_rate, head=head
            )


def architecture_errors(
    arch: Architecture, *, head: Head | None = None, space: SearchSpace | None = None
) -> list[str]:
    """Every way ``arch`` breaks the Cerebros rules (an empty list: it is valid).

    Structure: at least one level, every level has units, the output level one unit (with
    ``head``'s width and activation when given). Connections: every unit reads at least one
    unit, each listed once and in order, from an earlier level or (lateral) a lower-index
    unit of its own level, so every unit is reachable from the input; every unit below the
    output is read by a unit of a later level, so every unit feeds the output. With
    ``space``: levels, units, neurons, activations and learning rate within its bounds.
    """
    errors: list[str] = []
    if not arch.levels or any(not level for level in arch.levels):
        return ["every level needs at least one unit"]
    n_levels = arch.n_levels
    if len(arch.levels[-1]) != 1:
        errors.append(f"the output level has {len(arch.levels[-1])} units, not 1")
    out = arch.output_unit
    if head is not None and (out.neurons, out.activation) != (head.output_dim, head.activation):
        errors.append(f"output unit {(out.neurons, out.activation)} does not match the head")
    read: set[tuple[int, int]] = set()
    for k, level in enumerate(arch.levels, start=1):
        for u, unit in enumerate(level):
            where = f"unit {(k, u)}"
            if not unit.predecessors:
                errors.append(f"{where} reads nothing")
            if list(unit.predecessors) != sorted(set(unit.predecessors)):
                errors.append(f"{where}: predecessors not sorted and unique")
            for j, index in unit.predecessors:
                if not 0 <= j <= k or not 0 <= index < arch.units_on(j):
                    errors.append(f"{where} reads {(j, index)}, which does not exist")
                elif j == k and index >= u:
                    errors.append(f"{where}: lateral {(j, index)} is not a lower-index unit")
                elif j < k:
                    read.add((j, index))
            if unit.neurons < 1:
                errors.append(f"{where} has {unit.neurons} neurons")
    for k in range(1, n_levels):
        for u in range(arch.units_on(k)):
            if (k, u) not in read:
                errors.append(f"unit {(k, u)} feeds no later level")
    if space is not None:
        errors.extend(_space_errors(arch, space))
    return errors


def _space_errors(arch: Architecture, space: SearchSpace) -> list[str]:
    errors: list[str] = []
    if not space.minimum_levels <= arch.n_levels <= space.maximum_levels:
        errors.append(f"{arch.n_levels} levels outside the space")
    neurons = set(space.neuron_choices())
    for k, level in enumerate(arch.levels[:-1], start=1):
        if not space.minimum_units_per_level <= len(level) <= space.maximum_units_per_level:
            errors.append(f"level {k} has {len(level)} units, outside the space")
        for u, unit in enumerate(level):
            if unit.neurons not in neurons:
                errors.append(f"unit {(k, u)}: {unit.neurons} neurons outside the space")
            if unit.activation not in space.activation:
                errors.append(f"unit {(k, u)}: activation {unit.activation} outside the space")
    if space.activation_scope == "network":
        activations = {u.activation for level in arch.levels[:-1] for u in level}
        if len(activations) > 1:
            errors.append(f"several activations {sorted(activations)} in one network")
    if not space.draws_laterals() and any(
        j == k
        for k, level in enumerate(arch.levels, start=1)
        for u in level
        for j, _ in u.predecessors
    ):
        errors.append("a lateral connection in a space that draws none")
    if arch.learning_rate not in space.learning_rate:
        errors.append(f"learning rate {arch.learning_rate} outside the space")
    return errors
