"""Optional bookkeeping attached to a simulation run.

A recorder sees every chunk of every batch (the spikes each population emitted, what each
population's targets saw, and which neurons had non-zero input) and accumulates what it needs;
its ``finish()`` value lands in ``SimResult.extra[recorder.name]``. The simulator's hot loop is
unchanged when no recorder is attached.

* ``ProjectedCounts`` - per-step counts projected through given matrices (the cycle model's
  per-core synaptic operations, messages and hops);
* ``NeuroBenchCounter`` - synaptic operations with NeuroBench's rules, counted at each
  connection layer on the values it actually receives.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import scipy.sparse as sp
import torch

from snc.ir import INPUT, NEURON
from snc.ir.projections import fan_in

from .. import linear_maps


@dataclass
class ChunkView:
    """What a recorder sees of one chunk: steps t0 .. t0 + tc - 1 of one batch."""

    sim: Any
    batch: Any
    t0: int
    tc: int
    spikes: dict[str, np.ndarray]  # emitted, (tc, B, n) bool
    visible: Callable[[str], np.ndarray]  # as the targets see them (delayed in delay timing)
    float_of: Callable[[str], torch.Tensor]  # visible spikes as (tc*B, n) float32
    masks: dict[str, np.ndarray]  # neurons with non-zero input, (tc, B, n) bool


class Recorder:
    name = "recorder"
    wants_masks = False

    def start(self, sim, n_samples: int, timesteps: int) -> None:
        pass

    def chunk(self, view: ChunkView) -> None:
        pass

    def finish(self) -> Any:
        return None


def _sum_over_batch(a: np.ndarray) -> np.ndarray:
    """(tc, B, n) bool -> (tc, n) int32 counts."""
    return a.view(np.uint8).sum(axis=1, dtype=np.int32)


class ProjectedCounts(Recorder):
    """Per-step sums over samples of ``counts @ M``.

    spike_matrices:  {population: (n, m) matrix}; per step, the population's spikes per neuron
                     (summed over the batch) times M (e.g. one column per core: spikes, synapses
                     reached in each destination core, messages, hops).
    active_matrices: {population: (n, k) matrix} applied to the active-update mask likewise.
    Result: {"spikes": {pop: (T, m)}, "active": {pop: (T, k)}} float64, summed over all samples.
    """

    name = "projected"

    def __init__(self, spike_matrices: dict[str, Any], active_matrices: dict[str, Any] | None = None) -> None:
        self.spike_matrices = spike_matrices
        self.active_matrices = active_matrices or {}
        self.wants_masks = bool(self.active_matrices)

    def start(self, sim, n_samples, timesteps):
        self.spikes = {p: np.zeros((timesteps, m.shape[1])) for p, m in self.spike_matrices.items()}
        self.active = {p: np.zeros((timesteps, m.shape[1])) for p, m in self.active_matrices.items()}

    def chunk(self, view: ChunkView) -> None:
        sl = slice(view.t0, view.t0 + view.tc)
        for pop, m in self.spike_matrices.items():
            s = view.spikes.get(pop)
            if s is not None:
                self.spikes[pop][sl] += _project(_sum_over_batch(s), m)
        for pop, m in self.active_matrices.items():
            mask = view.masks.get(pop)
            if mask is not None:
                self.active[pop][sl] += _project(_sum_over_batch(mask), m)

    def finish(self):
        return {"spikes": self.spikes, "active": self.active}


def _project(counts: np.ndarray, m) -> np.ndarray:
    if sp.issparse(m):
        return np.asarray((sp.csr_matrix(counts.astype(np.float64)) @ m).todense())
    return counts.astype(np.float64) @ m


class NeuroBenchCounter(Recorder):
    """Synaptic operations with NeuroBench's rules (Yik et al. 2025; harness @ e521c28):

    at every connection layer (Dense, Conv2d) and every step, effective ops = sum over the
    non-zero input values of the layer of their non-zero weights' fan-out (zero weights and
    zero inputs skipped, bias excluded); they are ACs when every input value of that step is
    -1, 0 or 1, else MACs. Dense ops count every structural connection (weights and inputs all
    one, zero padding excluded). Results are per sample, summed over steps.
    """

    name = "neurobench"

    def start(self, sim, n_samples, timesteps):
        graph, shapes = sim.plan.graph, sim.plan.shapes
        self.timesteps = timesteps
        self.layers = []
        for name in graph.topological_order():
            node = graph.nodes[name]
            if node.kind not in ("Dense", "Conv2d"):
                continue
            (src,) = graph.inputs_of(name)
            in_shapes = [shapes[src]]
            m = linear_maps.matrix(node, in_shapes, shapes[name], 0, name)
            fanout = np.diff(m.tocsc().indptr).astype(np.float64)
            ones = node.replace(weight=np.ones_like(node.weight))
            dense = float(linear_maps.matrix(ones, in_shapes, shapes[name], 0, name).nnz)
            self.layers.append({"name": name, "input": src, "fanout": fanout, "dense": dense})
        self.acs = np.zeros(n_samples)
        self.macs = np.zeros(n_samples)
        self.dense = np.zeros(n_samples)
        self._static: dict[str, tuple[np.ndarray, bool]] = {}
        self._fans: dict[str, tuple[list[str], list[str]]] = {}  # layer input -> (operators, source populations)
        self._batch_first = None

    def _input_values(self, view: ChunkView, layer: dict) -> tuple[np.ndarray, bool]:
        """The layer's input for the chunk as (tc*B, n_in), and whether it is constant in time."""
        sim = view.sim
        graph = sim.plan.graph
        src = layer["input"]
        # Walk back through value-preserving reshapes to a population, if that is all there is.
        node = src
        while graph.nodes[node].kind in ("Flatten", "Reshape"):
            (node,) = graph.inputs_of(node)
        role = graph.nodes[node].role
        if role in (NEURON, INPUT) and not (role == INPUT and graph.nodes[node].encoding == "direct"):
            return view.visible(node).reshape(view.tc * view.batch.size, -1), False
        # General case: evaluate the operators between the populations and this layer's input
        # (the IR's one walk, ir.projections.fan_in, from the input operator back to them).
        if src not in self._fans:  # the same for every chunk
            if graph.nodes[src].role in (NEURON, INPUT):
                self._fans[src] = ([], [src])
            else:
                fan = fan_in(graph, src)
                self._fans[src] = (list(fan.ops) + [src], list(fan.sources))
        order, sources = self._fans[src]
        leaves = {}
        static = True
        for x in sources:
            n = graph.nodes[x]
            if n.role == INPUT and n.encoding == "direct":
                leaves[x] = torch.from_numpy(np.ascontiguousarray(view.batch.x, dtype=np.float32))
            else:
                static = False
                leaves[x] = None
        rows = view.batch.size if static else view.tc * view.batch.size
        for x in list(leaves):
            if leaves[x] is None:
                leaves[x] = view.float_of(x).reshape((rows,) + tuple(sim.plan.shapes[x]))
            elif not static:  # a constant input beside spiking ones: the same value every step
                leaves[x] = torch.cat([leaves[x]] * view.tc)
        values = _evaluate(sim.plan, leaves, order)
        return values[src].reshape(rows, -1).numpy(), static

    def chunk(self, view: ChunkView) -> None:
        b = view.batch.size
        first = view.batch.first
        for layer in self.layers:
            x, static = self._input_values(view, layer)
            nz = x != 0
            if static:
                per_sample = nz.astype(np.float64) @ layer["fanout"]  # (B,)
                binary = bool(np.all((x == 0) | (x == 1) | (x == -1)))
                ops = np.repeat(per_sample[None, :], view.tc, axis=0)  # (tc, B)
                steps_binary = np.full(view.tc, binary)
            else:
                ops = (nz.astype(np.float64) @ layer["fanout"]).reshape(view.tc, b)
                if x.dtype == bool:
                    steps_binary = np.ones(view.tc, dtype=bool)
                else:
                    ternary = (x == 0) | (x == 1) | (x == -1)
                    steps_binary = ternary.reshape(view.tc, -1).all(axis=1)
            self.acs[first:first + b] += ops[steps_binary].sum(axis=0)
            self.macs[first:first + b] += ops[~steps_binary].sum(axis=0)
            self.dense[first:first + b] += layer["dense"] * view.tc

    def finish(self):
        return {"effective_acs": self.acs, "effective_macs": self.macs, "dense": self.dense}


def _evaluate(plan, leaves: dict[str, torch.Tensor], order: list[str]) -> dict[str, torch.Tensor]:
    from .. import dense_ops

    graph = plan.graph
    values = dict(leaves)
    for name in order:
        node = graph.nodes[name]
        values[name] = dense_ops.apply(node, [values[i] for i in graph.inputs_of(name)])
    return values


class SpikeRecorder(Recorder):
    """Every population's spikes as emitted, {name: (steps, samples, neurons) bool}: what
    ``snc simulate --record`` writes, for comparison with other simulators."""

    name = "spikes"

    def start(self, sim, n_samples: int, timesteps: int) -> None:
        self.n, self.t = int(n_samples), int(timesteps)
        self.out: dict[str, np.ndarray] = {}

    def chunk(self, view: ChunkView) -> None:
        for name, s in view.spikes.items():
            arr = self.out.get(name)
            if arr is None:
                arr = self.out[name] = np.zeros((self.t, self.n, s.shape[-1]), bool)
            arr[view.t0:view.t0 + view.tc, view.batch.first:view.batch.first + s.shape[1]] = s

    def finish(self) -> dict[str, np.ndarray]:
        return self.out
