"""The one walk from a population to the populations that feed it.

Everything between two populations (Input, IF, LIF, Readout) is operators: a population's
*incoming projections* are, for each source population S, the operators on the paths from S to
it (pooling, reshapes, concatenations, residual joins, at most one host operator). The
simulator's plan, quantize, map and the metrics read this walk; what they compute from the
operators (composed matrices, weight scales, connectivity) is theirs.
"""
from __future__ import annotations

from dataclasses import dataclass

from snc.errors import InvalidGraph

from .node import INPUT, NEURON, READOUT

POPULATION_ROLES = (INPUT, NEURON, READOUT)


@dataclass(frozen=True)
class Incoming:
    """The operators on the paths from population ``source`` to population ``target``
    (topological order; empty when ``source`` feeds ``target`` directly)."""

    source: str
    target: str
    ops: tuple[str, ...]


@dataclass(frozen=True)
class Fan:
    """Everything feeding population ``target``: the union of its operators and one
    ``Incoming`` per source population, both in topological order."""

    target: str
    ops: tuple[str, ...]
    incoming: tuple[Incoming, ...]

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(i.source for i in self.incoming)


def fan_in(graph, target: str, position: dict[str, int] | None = None) -> Fan:
    """The incoming projections of population ``target``. A Readout feeding a population is
    refused (``InvalidGraph`` naming it)."""
    if position is None:
        position = {n: i for i, n in enumerate(graph.topological_order())}
    ops: set[str] = set()
    sources: set[str] = set()
    stack = list(graph.inputs_of(target))
    while stack:
        x = stack.pop()
        role = graph.nodes[x].role
        if role in POPULATION_ROLES:
            if role == READOUT:
                raise InvalidGraph("a Readout cannot feed another population", node=x)
            sources.add(x)
        elif x not in ops:
            ops.add(x)
            stack.extend(graph.inputs_of(x))
    ordered = sorted(ops, key=position.__getitem__)
    if graph.is_recurrent:
        # Operators after a Delay may come earlier in the graph's order (its edges are cut
        # there): order them along the paths between populations instead.
        import networkx as nx

        try:
            ordered = list(nx.lexicographical_topological_sort(graph._edges.subgraph(ordered), key=position.__getitem__))
        except nx.NetworkXUnfeasible:
            raise InvalidGraph("a cycle through operators only (no population on it)", node=target) from None
    incoming = []
    for src in sorted(sources, key=position.__getitem__):
        reach = {src}
        chain = []
        for op in ordered:
            if any(i in reach for i in graph.inputs_of(op)):
                reach.add(op)
                chain.append(op)
        incoming.append(Incoming(src, target, tuple(chain)))
    return Fan(target, tuple(ordered), tuple(incoming))


def walk(graph) -> list[Fan]:
    """``fan_in`` of every population that has inputs (not the Input nodes), topological order."""
    order = graph.topological_order()
    position = {n: i for i, n in enumerate(order)}
    return [fan_in(graph, n, position) for n in order if graph.nodes[n].role in (NEURON, READOUT)]
