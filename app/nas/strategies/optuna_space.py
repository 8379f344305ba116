"""The Cerebros space as Optuna parameters, and Optuna studies rebuilt from a run's history.

Optuna's samplers are used as libraries (`tpe`, `nsga2`): on every ask, a throwaway
in-memory study gets the run's trials (`optuna.trial.create_trial`), `study.ask()` suggests
one set of parameters, and `OptunaSpace.build` turns them into an architecture. No second
storage: the trials table is the only state, so a resumed run asks the same question.

Parameters (``k`` a hidden level, ``u`` a unit):

* ``levels`` (with the output level, as ``minimum_levels``), ``units_{k}``,
  ``neurons_{k}_{u}`` (log scale over a ``min..max`` range; the index into
  ``neurons_per_unit_choices`` when that list is given, which keeps their order),
  ``activation`` (``activation_scope="network"``) or ``activation_{k}_{u}``, and
  ``learning_rate`` (the index into the sorted list). A parameter with a single possible
  value is left out.
* Connectivity: ``skip_rate`` (the fraction of possible connections from two or more
  levels down that exist) and ``lateral_rate`` (the same for same-level connections). They
  are measured on an architecture, so every trial of the history has them exactly, however
  it was proposed. To build, `build` draws `WIRING_DRAWS` wirings of the suggested moiety by
  the space's own Cerebros rules (`app.nas.space.wire`, with the spec's affinity factors)
  and keeps the one whose rates are nearest the suggestion: every wiring is one random
  search could draw, and the sampler learns which density pays.

``conditional=True`` (TPE) suggests only what the architecture uses (``units_3`` only with
four levels or more); ``conditional=False`` (NSGA-II, whose crossover works on the
parameters every trial has) always suggests every gene up to the space's maxima and uses
those the number of levels and units select; an architecture's unused genes repeat its
used ones (`OptunaSpace._tile`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState

from app.nas.space import Architecture, Predecessors, assemble, wire
from app.nas.strategies.base import SearchSetup, TrialView

__all__ = [
    "WIRING_DRAWS",
    "Genome",
    "OptunaSpace",
    "seed_for",
    "wiring_rates",
]

#: Wirings drawn per suggestion; the nearest to the suggested rates is kept.
WIRING_DRAWS = 8

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def seed_for(*parts: int) -> int:
    """A 32-bit seed mixed from ``parts`` (the run's seed, the history's length, ...)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def wiring_rates(counts: Sequence[int], preds: Predecessors) -> dict[str, float]:
    """``skip_rate`` and ``lateral_rate`` of a wiring; a rate with nothing possible is left out.

    ``counts[k]`` is the number of units on level k (0 is the input), ``preds[k - 1][u]`` what
    unit u of level k reads.
    """
    skips = possible_skips = laterals = possible_laterals = 0
    for k in range(1, len(counts)):
        below = sum(counts[: max(k - 1, 0)])  # units two or more levels down
        for u in range(counts[k]):
            possible_skips += below
            possible_laterals += u
            for j, _ in preds[k - 1][u]:
                if j <= k - 2:
                    skips += 1
                elif j == k:
                    laterals += 1
    rates = {}
    if possible_skips:
        rates["skip_rate"] = skips / possible_skips
    if possible_laterals:
        rates["lateral_rate"] = laterals / possible_laterals
    return rates


def _preds_of(arch: Architecture) -> Predecessors:
    return [[set(unit.predecessors) for unit in level] for level in arch.levels]


def _counts_of(arch: Architecture) -> list[int]:
    return [1] + [len(level) for level in arch.levels]


def _contains(dist: BaseDistribution, value: Any) -> bool:
    if isinstance(dist, CategoricalDistribution):
        return value in dist.choices
    if isinstance(dist, IntDistribution):
        return isinstance(value, int) and dist.low <= value <= dist.high
    if isinstance(dist, FloatDistribution):
        return isinstance(value, float) and dist.low <= value <= dist.high
    return False


def _suggest(trial: optuna.Trial, name: str, dist: BaseDistribution) -> Any:
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, log=dist.log)
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, log=dist.log)
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    raise TypeError(f"no suggestion for {dist!r}")


def _middle(dist: BaseDistribution) -> Any:
    """A neutral value of ``dist`` (for a gene no architecture of the tiling can give)."""
    if isinstance(dist, CategoricalDistribution):
        return dist.choices[0]
    if isinstance(dist, IntDistribution):
        if dist.log:
            return round(math.sqrt(dist.low * dist.high))
        return (dist.low + dist.high) // 2
    if isinstance(dist, FloatDistribution):
        return (dist.low + dist.high) / 2
    raise TypeError(f"no middle value of {dist!r}")


@dataclass(frozen=True)
class Genome:
    """Suggested or encoded parameters, and the moiety they describe."""

    params: dict[str, Any]
    distributions: dict[str, BaseDistribution]
    levels: tuple[tuple[tuple[int, str], ...], ...]  # with the output unit, as `Shape`
    learning_rate: float


#: Picks a gene's value: (name, distribution) -> value.
Pick = Callable[[str, BaseDistribution], Any]


class OptunaSpace:
    """The run's search space as Optuna distributions (see the module docstring)."""

    def __init__(self, setup: SearchSetup, *, conditional: bool) -> None:
        self.setup = setup
        self.space = setup.spec.search_space
        self.conditional = conditional
        space = self.space
        self.neuron_choices = space.neuron_choices()
        contiguous = space.neurons_per_unit_choices is None
        self._neurons_by_index = not contiguous
        self.neurons_dist: BaseDistribution | None = None
        if len(self.neuron_choices) > 1:
            self.neurons_dist = (
                IntDistribution(self.neuron_choices[0], self.neuron_choices[-1], log=True)
                if contiguous
                else IntDistribution(0, len(self.neuron_choices) - 1)
            )
        self.activations = list(space.activation)
        self.learning_rates = sorted(space.learning_rate)

    # -- the genes, in order --------------------------------------------------------------
    def _walk(self, pick: Pick, rates_known: Callable[[list[int]], set[str]]) -> Genome:
        """Choose every gene with ``pick``, the conditional structure deciding which exist."""
        space = self.space
        params: dict[str, Any] = {}
        dists: dict[str, BaseDistribution] = {}

        def gene(name: str, dist: BaseDistribution | None, single: Any) -> Any:
            if dist is None:
                return single
            value = pick(name, dist)
            params[name] = value
            dists[name] = dist
            return value

        def int_dist(low: int, high: int) -> IntDistribution | None:
            return IntDistribution(low, high) if low < high else None

        n_levels = int(
            gene(
                "levels", int_dist(space.minimum_levels, space.maximum_levels), space.minimum_levels
            )
        )
        many_activations = len(self.activations) > 1
        activation_dist = CategoricalDistribution(self.activations) if many_activations else None
        network_activation: str | None = None
        if space.activation_scope == "network" and (n_levels > 1 or not self.conditional):
            network_activation = str(gene("activation", activation_dist, self.activations[0]))
        hidden_levels = n_levels - 1 if self.conditional else space.maximum_levels - 1
        levels: list[tuple[tuple[int, str], ...]] = []
        for k in range(1, hidden_levels + 1):
            n_units = int(
                gene(
                    f"units_{k}",
                    int_dist(space.minimum_units_per_level, space.maximum_units_per_level),
                    space.minimum_units_per_level,
                )
            )
            width = n_units if self.conditional else space.maximum_units_per_level
            units = []
            for u in range(width):
                raw = gene(f"neurons_{k}_{u}", self.neurons_dist, self.neuron_choices[0])
                neurons = self.neuron_choices[raw] if self._neurons_by_index else int(raw)
                activation = network_activation or str(
                    gene(f"activation_{k}_{u}", activation_dist, self.activations[0])
                )
                units.append((neurons, activation))
            if k < n_levels:
                levels.append(tuple(units[:n_units]))
        head = self.setup.head
        levels.append(((head.output_dim, head.activation),))
        lr_index = gene("learning_rate", int_dist(0, len(self.learning_rates) - 1), 0)
        counts = [1] + [len(level) for level in levels]
        possible = rates_known(counts)
        for name in ("skip_rate", "lateral_rate"):
            if name == "lateral_rate" and not space.draws_laterals():
                continue  # the spec draws none: nothing to steer
            if name in possible or not self.conditional:
                gene(name, FloatDistribution(0.0, 1.0), 0.0)
        return Genome(params, dists, tuple(levels), self.learning_rates[int(lr_index)])

    @staticmethod
    def _possible_rates(counts: list[int]) -> set[str]:
        """The rates a moiety of ``counts`` has (whatever its wiring)."""
        empty: Predecessors = [[set() for _ in range(n)] for n in counts[1:]]
        return set(wiring_rates(counts, empty))

    # -- suggest, encode, build -----------------------------------------------------------
    def suggest(self, trial: optuna.Trial) -> Genome:
        """The genome ``trial``'s sampler suggests."""
        return self._walk(lambda name, dist: _suggest(trial, name, dist), self._possible_rates)

    def encode(self, arch: Architecture) -> Genome | None:
        """``arch`` as parameters; None when it is not in this space (another run's space)."""
        values: dict[str, Any] = {"levels": arch.n_levels}
        for k, level in enumerate(arch.levels[:-1], start=1):
            values[f"units_{k}"] = len(level)
            for u, unit in enumerate(level):
                if self._neurons_by_index:
                    if unit.neurons not in self.neuron_choices:
                        return None
                    values[f"neurons_{k}_{u}"] = self.neuron_choices.index(unit.neurons)
                else:
                    values[f"neurons_{k}_{u}"] = unit.neurons
                values[f"activation_{k}_{u}"] = unit.activation
                values.setdefault("activation", unit.activation)
        if arch.learning_rate not in self.learning_rates:
            return None
        values["learning_rate"] = self.learning_rates.index(arch.learning_rate)
        values.update(wiring_rates(_counts_of(arch), _preds_of(arch)))
        if not self.conditional:
            self._tile(arch, values)
        fits = True

        def pick(name: str, dist: BaseDistribution) -> Any:
            nonlocal fits
            if name not in values:  # a gene nothing of this architecture gives
                return _middle(dist)
            if not _contains(dist, values[name]):
                fits = False
                return _middle(dist)
            return values[name]

        genome = self._walk(pick, lambda counts: set(values) & {"skip_rate", "lateral_rate"})
        if not fits or len(genome.levels) != arch.n_levels:
            return None
        if any(
            tuple((u.neurons, u.activation) for u in level) != shape
            for level, shape in zip(arch.levels, genome.levels, strict=True)
        ):
            return None  # e.g. several activations under activation_scope="network"
        return genome

    def _tile(self, arch: Architecture, values: dict[str, Any]) -> None:
        """Give the genes ``arch`` does not use the values of those it uses, repeated.

        Crossover mixes genes of two parents; a child whose ``levels`` gene comes from a
        deeper parent expresses the other parent's unused genes. Copies of used ones (level
        k + n is level k again, unit u + n unit u) keep such a child like its parents, where
        a constant filler (the smallest width, one unit) would make it a different network.
        """
        hidden = arch.n_levels - 1
        if hidden == 0:
            return  # nothing to copy: unused genes take the middle of their range
        for k in range(1, self.space.maximum_levels):
            source_k = (k - 1) % hidden + 1
            n_units = values[f"units_{source_k}"]
            values.setdefault(f"units_{k}", n_units)
            for u in range(self.space.maximum_units_per_level):
                for gene in ("neurons", "activation"):
                    source = values[f"{gene}_{source_k}_{u % n_units}"]
                    values.setdefault(f"{gene}_{k}_{u}", source)

    def build(self, genome: Genome, rng: np.random.Generator) -> Architecture:
        """The architecture of ``genome``: its moiety, wired by the Cerebros rules.

        Of `WIRING_DRAWS` wirings drawn with ``rng``, the one nearest the suggested rates.
        """
        counts = [1] + [len(level) for level in genome.levels]
        wanted = {
            name: float(genome.params[name])
            for name in ("skip_rate", "lateral_rate")
            if name in genome.params
        }
        best: Predecessors | None = None
        best_distance = math.inf
        for _ in range(WIRING_DRAWS if wanted else 1):
            preds = wire(self.space, rng, counts)
            rates = wiring_rates(counts, preds)
            distance = sum((rates.get(name, 0.0) - value) ** 2 for name, value in wanted.items())
            if distance < best_distance:
                best, best_distance = preds, distance
        assert best is not None
        return assemble(
            genome.levels,
            best,
            input_dim=self.setup.input_dim,
            learning_rate=genome.learning_rate,
            head=self.setup.head,
        )


def frozen_trial(
    genome: Genome,
    state: TrialState,
    *,
    values: Sequence[float] | None = None,
    intermediate: Mapping[int, float] | None = None,
    system_attrs: Mapping[str, Any] | None = None,
) -> FrozenTrial:
    """An Optuna trial of ``genome`` in ``state`` (for `optuna.Study.add_trial`)."""
    return optuna.trial.create_trial(
        state=state,
        values=list(values) if values is not None else None,
        params=dict(genome.params),
        distributions=dict(genome.distributions),
        intermediate_values=dict(intermediate or {}),
        system_attrs=dict(system_attrs or {}),
    )


def roots(history: Sequence[TrialView]) -> list[TrialView]:
    """The trials trained from scratch (not continuations), by number."""
    return sorted((t for t in history if t.is_new), key=lambda t: t.number)
