"""One mutation of a Cerebros architecture that keeps it valid (regularized evolution).

Real et al. (AAAI 2019) mutate the tournament's winner by one random change. Here a change
is one of `MUTATIONS`, chosen uniformly among those that apply to the architecture and the
space (a level cannot be added at ``maximum_levels``, a neuron count not changed when the
space allows one):

* ``add_level``: a new hidden level at a random depth, drawn and wired like a fresh
  Cerebros level (units, neurons, activation; predecessor picks from every level below and
  lateral connections by the space's rules); every later unit also picks from it as if it
  had been there when it was drawn.
* ``remove_level``: a hidden level and its connections go; references above it move down.
* ``add_unit`` / ``remove_unit``: a unit appended to a hidden level (wired like a fresh one)
  or one taken out (references to higher indices move down).
* ``change_neurons``, ``change_activation`` (one unit; every hidden unit under
  ``activation_scope="network"``), ``change_learning_rate``: another value of the space.
* ``rewire``: one connection of a unit replaced by another valid one it does not have.
* ``add_predecessor``: a connection from a unit two or more levels down that is not there.
* ``add_lateral``: a connection from a lower-index unit of the same level that is not there
  (neither this nor ``rewire`` makes lateral connections in a space that draws none).

Afterwards, a unit left reading nothing reads a pick of the level below (the Cerebros count
for it), and orphans (units no later level reads) are wired by the space's orphan repair, so
the result passes `app.nas.space.architecture_errors`: every unit reachable from the input
and feeding the output, lateral connections only to lower-index units of the same level,
the output unit the head's. Everything random comes from the ``rng`` given: deterministic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from app.nas.space import (
    Architecture,
    Head,
    Predecessors,
    assemble,
    lateral_picks,
    predecessor_count,
    predecessor_picks,
    repair_orphans,
)
from app.nas.spec import SearchSpace

__all__ = ["MUTATIONS", "applicable_mutations", "mutate"]

Edge = tuple[int, int]


@dataclass
class _Net:
    """A mutable copy of an architecture: hidden levels' units, predecessors, learning rate."""

    hidden: list[list[tuple[int, str]]]  # per hidden level k (index k - 1): (neurons, activation)
    preds: Predecessors  # per level, output level last
    learning_rate: float

    @classmethod
    def of(cls, arch: Architecture) -> _Net:
        return cls(
            hidden=[[(u.neurons, u.activation) for u in level] for level in arch.levels[:-1]],
            preds=[[set(u.predecessors) for u in level] for level in arch.levels],
            learning_rate=arch.learning_rate,
        )

    @property
    def n_levels(self) -> int:
        return len(self.preds)

    @property
    def counts(self) -> list[int]:
        return [1] + [len(level) for level in self.preds]

    def units(self) -> list[Edge]:
        """Every unit (level, index), the output included."""
        return [(k, u) for k in range(1, self.n_levels + 1) for u in range(self.counts[k])]

    def remap(self, move: Callable[[Edge], Edge | None]) -> None:
        """Apply ``move`` to every connection (None drops it)."""
        for level in self.preds:
            for i, picks in enumerate(level):
                level[i] = {m for m in (move(e) for e in picks) if m is not None}

    def candidates(self, k: int, u: int) -> list[Edge]:
        """Every unit (level, index) that unit ``u`` of level ``k`` may read, sorted."""
        counts = self.counts
        below = [(j, i) for j in range(k) for i in range(counts[j])]
        return below + [(k, i) for i in range(u)]


def _draw_unit(
    space: SearchSpace, rng: np.random.Generator, network_activation: str | None
) -> tuple[int, str]:
    choices = space.neuron_choices()
    neurons = int(choices[int(rng.integers(len(choices)))])
    activation = network_activation or str(
        space.activation[int(rng.integers(len(space.activation)))]
    )
    return neurons, activation


def _network_activation(space: SearchSpace, rng: np.random.Generator, net: _Net) -> str | None:
    """The activation every hidden unit shares under ``activation_scope="network"``.

    Drawn when the network has no hidden unit yet; None under ``activation_scope="unit"``.
    """
    if space.activation_scope != "network":
        return None
    for level in net.hidden:
        if level:
            return level[0][1]
    return str(space.activation[int(rng.integers(len(space.activation)))])


# -- the mutations: each changes ``net`` in place --------------------------------------------
def _add_level(space: SearchSpace, rng: np.random.Generator, net: _Net) -> None:
    p = int(rng.integers(1, net.n_levels + 1))  # the new level's number; the output moves up
    net.remap(lambda e: (e[0] + 1, e[1]) if e[0] >= p else e)
    activation = _network_activation(space, rng, net)
    n_units = int(rng.integers(space.minimum_units_per_level, space.maximum_units_per_level + 1))
    net.hidden.insert(p - 1, [_draw_unit(space, rng, activation) for _ in range(n_units)])
    net.preds.insert(p - 1, [set() for _ in range(n_units)])
    counts = net.counts
    for u in range(n_units):
        net.preds[p - 1][u] = predecessor_picks(space, rng, p, counts) | lateral_picks(
            space, rng, p, u
        )
    for k in range(p + 1, net.n_levels + 1):  # later units pick from it too
        for u in range(counts[k]):
            n_picks = predecessor_count(space, k, p, n_units)
            for index in rng.integers(0, n_units, size=n_picks):
                net.preds[k - 1][u].add((p, int(index)))


def _remove_level(space: SearchSpace, rng: np.random.Generator, net: _Net) -> None:
    p = int(rng.integers(1, net.n_levels))
    del net.hidden[p - 1]
    del net.preds[p - 1]
    net.remap(lambda e: None if e[0] == p else (e[0] - 1, e[1]) if e[0] > p else e)


def _add_unit(space: SearchSpace, rng: np.random.Generator, net: _Net) -> None:
    levels = [k for k in range(1, net.n_levels) if net.counts[k] < space.maximum_units_per_level]
    k = levels[int(rng.integers(len(levels)))]
    u = net.counts[k]
    net.hidden[k - 1].append(_draw_unit(space, rng, _network_activation(space, rng, net)))
    net.preds[k - 1].append(set())
    counts = net.counts
    net.preds[k - 1][u] = predecessor_picks(space, rng, k, counts) | lateral_picks(space, rng, k, u)


def _remove_unit(space: SearchSpace, rng: np.random.Generator, net: _Net) -> None:
    levels = [k for k in range(1, net.n_levels) if net.counts[k] > space.minimum_units_per_level]
    k = levels[int(rng.integers(len(levels)))]
    i = int(rng.integers(net.counts[k]))
    del net.hidden[k - 1][i]
    del net.preds[k - 1][i]

    def move(e: Edge) -> Edge | None:
        if e[0] != k or e[1] < i:
            return e
        return None if e[1] == i else (k, e[1] - 1)

    net.remap(move)


def _change_neurons(space: SearchSpace, rng: np.random.Generator, net: _Net) -> None:
    k, u = _hidden_unit(rng, net)
    neurons, activation = net.hidden[k - 1][u]
    others = [n for n in space.neuron_choices() if n != neurons]
    net.hidden[k - 1][u] = (int(others[int(rng.integers(len(others)))]), activation)


def _change_activation(space: SearchSpace, rng: np.random.Generator, net: _Net) -> None:
    if space.activation_scope == "network":
        current = _network_activation(space, rng, net)
        others = [a for a in space.activation if a != current]
        new = str(others[int(rng.integers(len(others)))])
        net.hidden = [[(n, new) for n, _ in level] for level in net.hidden]
        return
    k, u = _hidden_unit(rng, net)
    neurons, activation = net.hidden[k - 1][u]
    others = [a for a in space.activation if a != activation]
    net.hidden[k - 1][u] = (neurons, str(others[int(rng.integers(len(others)))]))


def _change_learning_rate(space: SearchSpace, rng: np.random.Generator, net: _Net) -> None:
    others = [lr for lr in space.learning_rate if lr != net.learning_rate]
    net.learning_rate = float(others[int(rng.integers(len(others)))])


def _rewire(space: SearchSpace, rng: np.random.Generator, net: _Net) -> None:
    options = [(k, u) for k, u in net.units() if _missing(net, k, u, _any_of(space, k))]
    k, u = options[int(rng.integers(len(options)))]
    picks = net.preds[k - 1][u]
    old = sorted(picks)[int(rng.integers(len(picks)))]
    new = _missing(net, k, u, _any_of(space, k))
    picks.discard(old)
    picks.add(new[int(rng.integers(len(new)))])


def _add_predecessor(space: SearchSpace, rng: np.random.Generator, net: _Net) -> None:
    options = [(k, u) for k, u in net.units() if _missing(net, k, u, _skip_of(k))]
    k, u = options[int(rng.integers(len(options)))]
    new = _missing(net, k, u, _skip_of(k))
    net.preds[k - 1][u].add(new[int(rng.integers(len(new)))])


def _add_lateral(space: SearchSpace, rng: np.random.Generator, net: _Net) -> None:
    options = [(k, u) for k, u in net.units() if _missing(net, k, u, _lateral_of(k))]
    k, u = options[int(rng.integers(len(options)))]
    new = _missing(net, k, u, _lateral_of(k))
    net.preds[k - 1][u].add(new[int(rng.integers(len(new)))])


# -- helpers ---------------------------------------------------------------------------------
def _hidden_unit(rng: np.random.Generator, net: _Net) -> Edge:
    units = [(k, u) for k in range(1, net.n_levels) for u in range(net.counts[k])]
    return units[int(rng.integers(len(units)))]


def _missing(net: _Net, k: int, u: int, keep: Callable[[Edge], bool]) -> list[Edge]:
    """Connections unit ``u`` of level ``k`` may have, does not have, and ``keep`` accepts."""
    have = net.preds[k - 1][u]
    return [e for e in net.candidates(k, u) if e not in have and keep(e)]


def _any_of(space: SearchSpace, k: int) -> Callable[[Edge], bool]:
    """Any connection a unit of level ``k`` may have (lateral ones if the space draws them)."""
    laterals = space.draws_laterals()
    return lambda e: laterals or e[0] < k


def _skip_of(k: int) -> Callable[[Edge], bool]:
    return lambda e: e[0] <= k - 2


def _lateral_of(k: int) -> Callable[[Edge], bool]:
    return lambda e: e[0] == k


def _hidden_units(net: _Net) -> int:
    return sum(len(level) for level in net.hidden)


def _applies(name: str, space: SearchSpace, net: _Net) -> bool:
    counts = net.counts
    hidden = range(1, net.n_levels)
    if name == "add_level":
        return net.n_levels < space.maximum_levels
    if name == "remove_level":
        return net.n_levels > max(space.minimum_levels, 1)
    if name == "add_unit":
        return any(counts[k] < space.maximum_units_per_level for k in hidden)
    if name == "remove_unit":
        return any(counts[k] > space.minimum_units_per_level for k in hidden)
    if name == "change_neurons":
        return _hidden_units(net) > 0 and len(space.neuron_choices()) > 1
    if name == "change_activation":
        return _hidden_units(net) > 0 and len(space.activation) > 1
    if name == "change_learning_rate":
        return len(space.learning_rate) > 1
    if name == "add_lateral" and not space.draws_laterals():
        return False
    keep = {
        "rewire": lambda k: _any_of(space, k),
        "add_predecessor": _skip_of,
        "add_lateral": _lateral_of,
    }[name]
    return any(_missing(net, k, u, keep(k)) for k, u in net.units())


Mutation = Callable[[SearchSpace, np.random.Generator, _Net], None]

#: Every mutation, by name, in the order `applicable_mutations` lists them.
MUTATIONS: dict[str, Mutation] = {
    "add_level": _add_level,
    "remove_level": _remove_level,
    "add_unit": _add_unit,
    "remove_unit": _remove_unit,
    "change_neurons": _change_neurons,
    "change_activation": _change_activation,
    "change_learning_rate": _change_learning_rate,
    "rewire": _rewire,
    "add_predecessor": _add_predecessor,
    "add_lateral": _add_lateral,
}


def applicable_mutations(arch: Architecture, space: SearchSpace) -> list[str]:
    """The mutations that can change ``arch`` within ``space``."""
    net = _Net.of(arch)
    return [name for name in MUTATIONS if _applies(name, space, net)]


def _repair(space: SearchSpace, rng: np.random.Generator, net: _Net) -> None:
    """Give every unit left reading nothing a pick of the level below; wire the orphans."""
    counts = net.counts
    for k in range(1, net.n_levels + 1):
        for u in range(counts[k]):
            if net.preds[k - 1][u]:
                continue
            n_picks = predecessor_count(space, k, k - 1, counts[k - 1])
            for index in rng.integers(0, counts[k - 1], size=n_picks):
                net.preds[k - 1][u].add((k - 1, int(index)))
    repair_orphans(space, rng, net.preds, counts)


def mutate(
    arch: Architecture,
    space: SearchSpace,
    rng: np.random.Generator,
    *,
    head: Head,
    kind: str | None = None,
) -> tuple[Architecture, str]:
    """``arch`` changed by one mutation (``kind``, else one drawn), and its name.

    Raises ValueError when ``kind`` does not apply (or, without ``kind``, when none does: a
    space of one architecture).
    """
    options = applicable_mutations(arch, space)
    if kind is None:
        if not options:
            raise ValueError("no mutation applies to this architecture in this space")
        kind = options[int(rng.integers(len(options)))]
    elif kind not in options:
        raise ValueError(f"mutation {kind!r} does not apply here; applicable: {options}")
    net = _Net.of(arch)
    MUTATIONS[kind](space, rng, net)
    _repair(space, rng, net)
    levels = [*net.hidden, [(head.output_dim, head.activation)]]
    return (
        assemble(
            levels, net.preds, input_dim=arch.input_dim, learning_rate=net.learning_rate, head=head
        ),
        kind,
    )
