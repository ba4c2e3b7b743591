"""Packing blocks onto cores: several small blocks (of one or several populations) share a core
when the core's limits allow (see ``snc/passes/map_to_cores.py``).

A core holding blocks B1..Bk uses

* neurons:  sum of the blocks' neurons                                  <= neurons_per_core
* memory:   sum of the blocks' synaptic memory                          <= synaptic_memory_bits
* fan-in:   distinct source neurons over all the blocks (an input axon is shared by every
            block on the core that the source reaches): the exact union  <= max_fan_in
* fan-out:  sum of the blocks' output axons (distinct destination blocks); blocks of one
            destination that end up on one core share an axon, so this is an upper bound
                                                                        <= max_fan_out

Blocks are taken in topological order (producers before consumers, so a chain of small layers
lands on one core and its traffic never leaves it) and each goes to the first of the most
recently opened cores (``window``) where every limit still holds, else to a new core. The limit
that refused the block on the last core tried is recorded: it is what binds that core.
Deterministic, no randomness.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .partition import _Limits

WINDOW = 16  # open cores tried for each block (the most recent ones)


@dataclass
class _Core:
    blocks: list[int] = field(default_factory=list)
    neurons: int = 0
    synapses: int = 0
    memory_bits: int = 0
    fan_out: int = 0
    sources: dict[str, list[np.ndarray]] = field(default_factory=dict)  # source population -> sorted parts
    bound_fan_in: int = 0  # sum of the parts' sizes: an upper bound of the distinct sources
    refused_by: str | None = None  # the limit that refused a later block, if any

    def add_sources(self, sources: dict[str, np.ndarray]) -> None:
        for pop, idx in sources.items():
            self.sources.setdefault(pop, []).append(idx)
            self.bound_fan_in += int(idx.size)

    def fan_in(self) -> int:
        """Distinct source neurons (the parts of each source population merged, once)."""
        total = 0
        for parts in self.sources.values():
            if len(parts) > 1:
                parts[:] = [np.unique(np.concatenate(parts))]
            total += int(parts[0].size)
        self.bound_fan_in = total
        return total

    def fan_in_with(self, sources: dict[str, np.ndarray]) -> int:
        """Distinct source neurons if a block with ``sources`` joined."""
        total = self.fan_in()
        for pop, idx in sources.items():
            have = self.sources.get(pop)
            total += int(idx.size) if not have else int(idx.size - np.count_nonzero(np.isin(idx, have[0], assume_unique=True)))
        return total


def pack(rows: list[dict], sources: list[dict[str, np.ndarray]], lim: _Limits, window: int = WINDOW,
         enabled: bool = True) -> tuple[np.ndarray, list[dict]]:
    """Bins for the blocks ``rows`` (topological order; neurons, synapses, memory_bits, fan_out
    each) whose distinct source neurons per source population are ``sources[k]``.

    Returns (bin of each block, per-bin rows: blocks, populations, neurons, synapses,
    memory_bits, fan_in (exact union), fan_out (sum), bound: the limit that refused the next
    block, None when none did). ``enabled=False``: one block per bin."""
    cores: list[_Core] = []
    where = np.zeros(len(rows), dtype=np.int64)
    for k, row in enumerate(rows):
        placed = False
        if enabled:
            for c in range(max(0, len(cores) - window), len(cores)):
                core = cores[c]
                refused = None
                if core.neurons + row["neurons"] > lim.neurons:
                    refused = "neurons_per_core"
                elif core.memory_bits + row["memory_bits"] > lim.memory:
                    refused = "synaptic_memory_bits"
                elif core.fan_out + row["fan_out"] > lim.fan_out:
                    refused = "max_fan_out"
                elif core.bound_fan_in + row["fan_in"] > lim.fan_in and core.fan_in_with(sources[k]) > lim.fan_in:
                    # (the exact union only when the sum of the parts is over the limit)
                    refused = "max_fan_in"
                if refused is not None:
                    core.refused_by = core.refused_by or refused
                    continue
                core.add_sources(sources[k])
                core.blocks.append(k)
                core.neurons += row["neurons"]
                core.synapses += row["synapses"]
                core.memory_bits += row["memory_bits"]
                core.fan_out += row["fan_out"]
                where[k] = c
                placed = True
                break
        if not placed:
            core = _Core([k], row["neurons"], row["synapses"], row["memory_bits"], row["fan_out"])
            core.add_sources({p: np.asarray(v) for p, v in sources[k].items()})
            cores.append(core)
            where[k] = len(cores) - 1
    out = []
    for core in cores:
        pops = []
        for k in core.blocks:
            if rows[k]["population"] not in pops:
                pops.append(rows[k]["population"])
        out.append({"blocks": len(core.blocks), "populations": pops, "neurons": core.neurons,
                    "synapses": core.synapses, "memory_bits": core.memory_bits, "fan_in": core.fan_in(),
                    "fan_out": core.fan_out, "bound": core.refused_by})
    return where, out
