"""Synaptic operations, with one meaning: NeuroBench's effective SynapticOperations (Yik et al.,
Nat. Commun. 2025; harness NeuroBench/neurobench @ e521c28), counted at every connection layer
on the values it receives and attributed to the population that layer feeds.

For a connection layer (Dense, Conv2d) with weights W and input x at one step:

    ops   = sum_i [x_i != 0] * fanout_i        fanout_i = number of non-zero W[:, i]
    dense = the same with every weight and input one (zero padding stays zero)

(NeuroBench's worked example: W 3x3 with three zeros, x = [0, 1.3, -1] -> ops 4, dense 9.)
The step's ops are ACs when every value the layer receives in that step (over the batch) is
-1, 0 or 1, else MACs (a layer fed analog data, or pooled spikes). Per sample, summed over
steps. A population's synaptic operations are those of its *incoming* connection layers (the
Dense/Conv2d operators between its source populations and it): the destination side, what its
synapses perform. Each connection layer belongs to one population (the first, in topological
order, whose incoming operators contain it), so the sum over populations is NeuroBench's
Effective_ACs + Effective_MACs. The input values are those ``recorders.NeuroBenchCounter``
evaluates (its ``_input_values``), so the two agree run for run.

When this is counted: ``bookkeeping.record_spikes`` hands every population's spikes of a chunk
to ``note_spikes``; once the chunk's last spiking population is booked, every connection
layer's input of that chunk is known and all of them are counted at once. The counts are
stored on that population's ``PopulationStats.booked`` and ``SimResult`` moves each to the
``incoming`` of the population it feeds.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import torch

from snc.ir import INPUT, NEURON
from snc.ir.projections import walk

from .recorders import ChunkView, NeuroBenchCounter

CONNECTION_KINDS = ("Dense", "Conv2d")


@dataclass
class ConnectionOps:
    """The effective synaptic operations of one connection layer over a run.

    ops:            (N, T) int64 effective operations per sample and step.
    mac:            (N, T) bool, True where that step's operations are MACs (non-ternary input).
    dense_per_step: operations per step with every weight and input one (NeuroBench's Dense).
    destination:    the population the layer feeds (None only for a layer that feeds none).
    """

    name: str
    kind: str
    destination: str | None
    ops: np.ndarray
    mac: np.ndarray
    dense_per_step: float

    @property
    def samples(self) -> int:
        return int(self.ops.shape[0])

    @property
    def acs_per_sample(self) -> float:
        return float(self.ops[~self.mac].sum() / max(1, self.samples))

    @property
    def macs_per_sample(self) -> float:
        return float(self.ops[self.mac].sum() / max(1, self.samples))

    @property
    def synops_per_sample(self) -> float:
        return float(self.ops.sum() / max(1, self.samples))

    @property
    def dense_per_sample(self) -> float:
        return self.dense_per_step * int(self.ops.shape[1])


def destinations(graph) -> dict[str, str]:
    """Each connection layer -> the population whose incoming operators contain it (the first
    in topological order when several do)."""
    out: dict[str, str] = {}
    for fan in walk(graph):
        for op in fan.ops:
            if graph.nodes[op].kind in CONNECTION_KINDS:
                out.setdefault(op, fan.target)
    return out


def count(x: np.ndarray, static: bool, fanout: np.ndarray, tc: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """NeuroBench's rule on one connection layer's input ``x`` for a chunk: (rows, n_in) with rows
    = tc * b (step-major), or (b, n_in) when ``static`` (the same values every step). Returns the
    effective operations (tc, b) int64 and whether each step's are MACs (tc,) bool."""
    ops = _nonzero_times(x, fanout)
    if static:
        return np.broadcast_to(ops[None, :], (tc, b)), np.full(tc, not _ternary(x).all())
    mac = np.zeros(tc, dtype=bool) if x.dtype == bool else ~_ternary(x).reshape(tc, -1).all(axis=1)
    return ops.reshape(tc, b), mac


def _nonzero_times(x: np.ndarray, fanout: np.ndarray) -> np.ndarray:
    """sum_i [x_ri != 0] fanout_i per row, exactly: a float32 product while every partial sum is
    an integer below 2**24, else float64."""
    nz = x if x.dtype == bool else x != 0
    fanout = np.asarray(fanout)
    if fanout.size and fanout.min() == fanout.max():
        # Every input reaches as many non-zero weights (a dense layer without zero weights):
        # the row's non-zero inputs times that number, in integers.
        return np.count_nonzero(nz.reshape(len(nz), -1), axis=1).astype(np.int64) * int(fanout.flat[0])
    nz = torch.from_numpy(np.ascontiguousarray(nz).view(np.uint8))
    dtype = torch.float32 if float(fanout.sum()) < 2**24 else torch.float64
    ops = nz.to(dtype) @ torch.from_numpy(np.asarray(fanout)).to(dtype)
    return ops.to(torch.int64).numpy()


def _ternary(x: np.ndarray) -> np.ndarray:
    return (x == 0) | (x == 1) | (x == -1)


class _Run:
    """What one simulation needs to count: the connection layers (NeuroBenchCounter's list and
    input evaluation), the population that closes each chunk, and the chunk's spikes so far."""

    def __init__(self, sim) -> None:
        plan = sim.plan
        key = "synaptic_ops.counter"  # the layers' fan-outs depend on the plan only: built once per plan
        if key not in plan.memo:
            counter = NeuroBenchCounter()
            counter.start(sim, 0, 0)
            plan.memo[key] = counter
        self.counter = plan.memo[key]
        dest = destinations(plan.graph)
        self.kinds = {layer["name"]: plan.graph.nodes[layer["name"]].kind for layer in self.counter.layers}
        self.dest = {layer["name"]: dest.get(layer["name"]) for layer in self.counter.layers}
        recorded = [p.name for p in plan.populations
                    if p.node.role == NEURON or (p.node.role == INPUT and p.node.encoding != "direct")]
        self.closing = recorded[-1] if recorded else None
        self.key: tuple[int, int] | None = None  # (batch.first, t0) of the stashed chunk
        self.spikes: dict[str, np.ndarray] = {}


_RUNS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # Simulation -> _Run


def note_spikes(sim, batch, st, pop, s: np.ndarray, t0: int, tc: int) -> None:
    """Keep population ``pop``'s spikes ``s`` (tc, B, n) of the chunk; when ``pop`` is the last
    population booked in a chunk, count every connection layer of the chunk into ``st.booked``."""
    run = _RUNS.get(sim)
    if run is None:
        run = _RUNS[sim] = _Run(sim)
    if not run.counter.layers:
        return
    key = (batch.first, t0)
    if run.key != key:
        run.key, run.spikes = key, {}
    run.spikes[pop.name] = s
    if pop.name != run.closing:
        return
    b = batch.size
    shift = 1 if sim.timing == "delay" else 0  # NeuroBenchCounter's view: the timing's shift only
    seen: dict[str, np.ndarray] = {}

    def visible(src: str) -> np.ndarray:
        if src not in seen:
            own = run.spikes[src]
            if shift == 0:
                seen[src] = own
            elif shift >= tc:  # the simulator's history: the last steps of earlier chunks
                seen[src] = batch.history[src][-shift:][:tc]
            else:
                seen[src] = np.concatenate([batch.history[src][-shift:], own[:tc - shift]])
        return seen[src]

    def float_of(src: str) -> torch.Tensor:
        return torch.from_numpy(visible(src).reshape(tc * b, -1).view(np.uint8)).to(torch.float32)

    view = ChunkView(sim, batch, t0, tc, run.spikes, visible, float_of, {})
    n, t = st.spikes.shape
    for layer in run.counter.layers:
        name = layer["name"]
        x, static = run.counter._input_values(view, layer)
        ops, mac = count(x, static, layer["fanout"], tc, b)
        book = st.booked.get(name)
        if book is None:
            book = st.booked[name] = ConnectionOps(name, run.kinds[name], run.dest[name], np.zeros((n, t), np.int64),
                                                   np.zeros((n, t), bool), float(layer["dense"]))
        book.ops[batch.first:batch.first + b, t0:t0 + tc] = ops.T
        book.mac[batch.first:batch.first + b, t0:t0 + tc] = mac[None, :]
