"""Typed annotations: what a pass attaches to nodes and graphs for later consumers.

Each annotation is a frozen dataclass with one reader and one writer here; consumers never read
``meta`` keys themselves. The storage stays in ``meta`` (plain JSON-able dicts) so artifacts
carry it, and is private to this module.

* ``MaxPoolPart`` - a node of the spiking max-pool construction (passes/maxpool.py): its synapses
  implement the max, they are not weights of the model (prune and the metrics leave them out);
  selections are +-1 routings (quantize and balance keep them so); unit populations compare the
  values of a pooled population (balance scales them with it).
* ``relu_ceiling`` - the upper clip of the ReLU an IF population replaced (ReLU6, Clip): balance
  caps the population's scale at it and the ANN view (rate limit) clips there.
* ``Block`` - a slice of a population placed on one core (passes/map_to_cores.py). The mapping
  is stored once, in ``graph.meta["mapping"]`` (its per-block rows name population, start, stop
  and core); ``blocks`` reads a population's blocks from there. start and stop count positions
  in the population's mapping order: "flat" (row-major, C, H, W) or, for feature maps the map
  pass partitions spatially, "spatial" (H, W, C: a block is a band of pixel positions with all
  their channels). ``Block.indices()`` gives the flat neuron indices either way.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

_MAXPOOL = "maxpool"


@dataclass(frozen=True)
class MaxPoolPart:
    pool: str  # the MaxPool2d node this part implements
    select: bool = False  # a +-1 selection operator (routes a spike train into the maximum)
    unit: bool = False  # a tournament unit population
    source: str | None = None  # (unit) the node whose values it compares
    level: int | None = None  # (unit) its tournament level, from 1


def maxpool_part(node) -> MaxPoolPart | None:
    """The node's part in a max-pool construction, or None. Reads artifacts written before this
    annotation too (their keys ``maxpool_construct``, ``maxpool_select``, ``maxpool_unit_of``,
    ``maxpool_source`` and ``level``)."""
    meta = node.meta
    entry = meta.get(_MAXPOOL)
    if isinstance(entry, dict):
        return MaxPoolPart(**entry)
    if meta.get("maxpool_unit_of"):
        return MaxPoolPart(pool=meta["maxpool_unit_of"], unit=True, source=meta.get("maxpool_source"), level=meta.get("level"))
    if meta.get("maxpool_construct"):
        return MaxPoolPart(pool=meta["maxpool_construct"], select=bool(meta.get("maxpool_select")))
    return None


def with_maxpool_part(meta: dict[str, Any], part: MaxPoolPart) -> dict[str, Any]:
    """A copy of ``meta`` carrying ``part``."""
    return {**meta, _MAXPOOL: asdict(part)}


def is_maxpool_construct(node) -> bool:
    """Synapses (or a population) of the max-pool construction rather than of the model."""
    return maxpool_part(node) is not None


_CEILING = "ceiling"


def relu_ceiling(node) -> float | None:
    value = node.meta.get(_CEILING)
    return None if value is None else float(value)


def with_relu_ceiling(meta: dict[str, Any], ceiling: float | None) -> dict[str, Any]:
    """A copy of ``meta`` carrying ``ceiling`` (None: no ceiling)."""
    out = {k: v for k, v in meta.items() if k != _CEILING}
    if ceiling is not None:
        out[_CEILING] = float(ceiling)
    return out


def spatial_order(shape) -> np.ndarray:
    """Flat (C, H, W row-major) index of each position of the spatial order (H, W, C)."""
    c, h, w = (int(v) for v in shape)
    p = np.arange(c * h * w, dtype=np.int64)
    return (p % c) * (h * w) + p // c


@dataclass(frozen=True)
class Block:
    population: str
    start: int  # first position (in the population's mapping order) on the core
    stop: int  # one past the last
    core: int
    order: str = "flat"  # "flat" or "spatial"
    shape: tuple = ()  # the population's (C, H, W) for the spatial order

    def indices(self) -> np.ndarray:
        """Flat neuron indices of the block."""
        if self.order == "flat":
            return np.arange(self.start, self.stop, dtype=np.int64)
        return spatial_order(self.shape)[self.start:self.stop]


def orders(graph) -> dict[str, tuple[str, tuple]]:
    """{population: (order, shape)} of the populations mapped in a non-flat order."""
    mapping = graph.meta.get("mapping")
    if not isinstance(mapping, dict):
        return {}
    return {p: (str(o["order"]), tuple(int(v) for v in o["shape"])) for p, o in (mapping.get("orders") or {}).items()}


def blocks(graph, population: str) -> list[Block]:
    """The blocks of a mapped ``population`` in position order; [] when the graph (or the
    population) is not mapped."""
    return all_blocks(graph).get(population, [])


def all_blocks(graph) -> dict[str, list[Block]]:
    """Every mapped population's blocks (position order), populations in the order the mapping
    lists them first."""
    mapping = graph.meta.get("mapping")
    out: dict[str, list[Block]] = {}
    if not isinstance(mapping, dict):
        return out
    special = orders(graph)
    for r in mapping.get("cores", ()):
        order, shape = special.get(r["population"], ("flat", ()))
        out.setdefault(r["population"], []).append(
            Block(r["population"], int(r["start"]), int(r["stop"]), int(r["core"]), order, shape))
    return {p: sorted(b, key=lambda x: x.start) for p, b in out.items()}


def set_blocks(graph, placed: dict[str, list[tuple[int, int, int]]]) -> None:
    """Write a hand-made placement: ``placed[population] = [(start, stop, core), ...]`` become
    the mapping's per-core rows (other mapping keys, if any, stay)."""
    mapping = dict(graph.meta.get("mapping") or {})
    rows = [{"core": int(core), "population": pop, "start": int(start), "stop": int(stop)}
            for pop, blocks_ in placed.items() for start, stop, core in blocks_]
    mapping["cores"] = sorted(rows, key=lambda r: r["core"])
    graph.meta["mapping"] = mapping
