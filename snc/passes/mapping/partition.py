"""Splitting populations into core-sized blocks under the chip's limits (see
``snc/passes/map_to_cores.py``)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snc.errors import MappingError

from .connectivity import _Population

# ---------------------------------------------------------------------------------------------
# Splitting.


@dataclass(frozen=True)
class _Limits:
    hw: str
    neurons: int
    memory: int
    overhead: int
    fan_in: int
    fan_out: int


def _kth_offset(offsets: list[np.ndarray], limit: int) -> int | None:
    """Largest L with count(offsets < L) <= limit, or None when there are at most ``limit``."""
    allv = np.concatenate(offsets) if offsets else np.zeros(0, np.int64)
    if allv.size <= limit:
        return None
    return int(np.partition(allv, limit)[limit])


def _split(pop: _Population, lim: _Limits) -> np.ndarray:
    """Greedy maximal contiguous blocks under the four per-core limits (destinations split).
    Each incoming projection keeps the distinct sources of every block found on the way;
    ``pop.split_by`` names the limit that ended each block (None for the last)."""
    n = pop.size
    pop.synapses = np.zeros(n, dtype=np.int64)
    pop.bits = np.zeros(n, dtype=np.int64)
    for conn in pop.incoming:
        syn = conn.row_synapses()
        pop.synapses += syn
        pop.bits += syn * (conn.weight_bits + lim.overhead)
    if n and int(pop.synapses.max()) > lim.fan_in:
        # Each projection's row counts distinct source neurons: the synapses are the axons.
        need = int(pop.synapses.max())
        raise MappingError(
            f"the layer needs {need} input axons per neuron; a {lim.hw} core offers {lim.fan_in} (max_fan_in): "
            f"{need - lim.fan_in} over, {need / lim.fan_in:.2f}x; splitting a neuron's inputs over cores "
            "(partial sums) is not modelled, so reduce the layer's fan-in (e.g. pool before it)", node=pop.name)
    if n and int(pop.bits.max()) > lim.memory:
        k = int(np.argmax(pop.bits))
        raise MappingError(
            f"the layer needs {int(pop.bits[k])} bits of synaptic memory per neuron "
            f"({int(pop.synapses[k])} synapses); a {lim.hw} core offers {lim.memory} "
            f"(synaptic_memory_bits): {int(pop.bits[k]) - lim.memory} over, {int(pop.bits[k]) / lim.memory:.2f}x", node=pop.name)
    cum = np.concatenate(([0], np.cumsum(pop.bits)))
    present = pop.present_cumsum()
    starts = []
    split_by: list[str | None] = []  # the limit that ended each block (None: the population's end)
    block_sources: list[list[np.ndarray]] = [[] for _ in pop.incoming]
    a = 0
    guess = min(n, lim.neurons)
    while a < n:
        if pop.keep is not None:  # a block starts at an existing neuron; pruned ones take no core
            nxt = np.flatnonzero(pop.keep[a:])
            if not nxt.size:
                break
            a += int(nxt[0])
        by_neurons = int(np.searchsorted(present, present[a] + lim.neurons, side="right")) - 1
        by_memory = int(np.searchsorted(cum, cum[a] + lim.memory, side="right")) - 1
        b_max = min(n, by_neurons, by_memory)
        w = min(guess + 1, b_max - a)
        while True:
            b = a + w
            end = b
            why = None
            reach = [c.first_reach(a, b) for c in pop.incoming]
            cut = _kth_offset([offsets for _, offsets in reach], lim.fan_in)
            if cut is not None and a + cut < end:
                end, why = a + cut, "max_fan_in"
            cut = _kth_offset([c.first_cols(a, b) for c in pop.outgoing], lim.fan_out)
            if cut is not None and a + cut < end:
                end, why = a + cut, "max_fan_out"
            if end < b or b == b_max:
                break
            w = min(2 * w, b_max - a)
        if why is None and end < n:
            why = "neurons_per_core" if end == by_neurons else "synaptic_memory_bits" if end == by_memory else None
        if end == a:
            need = sum(c.blocks_of_cols(a, a + 1) for c in pop.outgoing)
            raise MappingError(
                f"neuron {a} of the layer sends to {need} cores (output axons); "
                f"a {lim.hw} core offers {lim.fan_out} (max_fan_out)", node=pop.name)
        for kept, (sources, offsets) in zip(block_sources, reach):
            kept.append(sources[offsets < end - a])  # pruned rows after end have no synapses
        starts.append(a)
        split_by.append(why)
        guess = end - a
        a = end
    starts = np.asarray(starts, dtype=np.int64)
    pop.split_by = split_by
    for conn, kept in zip(pop.incoming, block_sources):
        conn.keep_block_sources(starts, kept)
    return starts


