"""The event simulator: runs a spiking graph on a batch of samples, step by step in time.

Time is processed in chunks of Tc steps and the graph population by population inside a
chunk (populations in topological order), which is exact for feed-forward graphs:

* layer-synchronous timing (``sync``): population P at step t sees its sources' spikes of step t
  (the usual semantics of converted SNNs; a spike crosses the whole network in one step);
* one-step synaptic delay (``delay``): P at step t sees its sources' spikes of step t-1, as Lava
  and Loihi do (a Dense/Conv process sends what it computed in the previous step). A direct
  (analog) input is a constant current, present from step 1 in both modes.

All synaptic products of a chunk are done at once (dense GEMM/convolution or event gathers,
chosen per population and chunk from the measured spike counts, see synapses.py); the per-step
loop only updates neuron state (neurons.py).
"""
from __future__ import annotations

import time
from typing import Callable, Iterable

import numpy as np
import torch

from snc.errors import InvalidData, InvalidGraph
from snc.ir import INPUT, NEURON, READOUT, Graph
from snc.ir.models import model_of
from snc.ir.neurons import is_builtin, require_model

from .bookkeeping import record_spikes
from .counting import row_counts
from .neurons import FixedNeurons, FloatNeurons, ModelNeurons, readout_neurons
from ..plan import Plan, PopulationPlan, build_plan, host_stage
from .recorders import ChunkView
from .result import PopulationStats, SimResult
from .synapses import ProjectionKernel, evaluate_ops, integer_shared_group

ARITHMETIC = ("float32", "fixed")
TIMING = ("sync", "delay")
# Neuron-steps of the largest population per chunk: small enough that a chunk's currents stay in
# the L2 cache between the synaptic product and the neuron loop (measured: 2M is fastest here).
CHUNK_ELEMENTS = 2_000_000


def _check_data(graph: Graph, plan: Plan, data: np.ndarray, timesteps: int) -> np.ndarray:
    (name,) = graph.input_names
    return graph.nodes[name].conform(data, name, timesteps)


class _Batch:
    """State of one batch of samples while it runs."""

    def __init__(self, sim: "Simulation", x: np.ndarray, first: int) -> None:
        self.sim = sim
        self.x = x
        self.first = first
        self.size = len(x)
        plan = sim.plan
        fixed = sim.fixed
        self.neurons: dict[str, FloatNeurons | FixedNeurons] = {}
        self.readout_v: dict[str, np.ndarray] = {}
        self.const: dict[str, np.ndarray] = {}  # (B, n) synaptic input of every step from direct (static) sources
        # The last K steps of each population's spikes (oldest first), K = the longest shift a
        # target sees it with (synaptic Delay operators, plus one step in delay timing).
        self.history: dict[str, np.ndarray] = {}
        self._const_info: dict[str, tuple[bool, np.ndarray | None]] = {}
        for pop in plan.populations:
            node = pop.node
            if node.role == INPUT:
                if node.encoding != "direct" and sim.history_depth.get(pop.name):
                    self.history[pop.name] = np.zeros((sim.history_depth[pop.name], self.size, pop.size), dtype=bool)
                continue
            if node.role == READOUT:
                self.readout_v[pop.name] = np.zeros((self.size, pop.size), dtype=np.int64 if fixed else np.float64)
                if fixed or node.leaky:  # an integrator (LI: leaky) is a population that never fires
                    self.neurons[pop.name] = readout_neurons(node, pop.shape, self.size, fixed)
            else:
                if is_builtin(node):
                    self.neurons[pop.name] = (FixedNeurons if fixed else FloatNeurons)(node, pop.shape, self.size)
                else:  # a model that declares its own dynamics (ir/models.py)
                    self.neurons[pop.name] = ModelNeurons(model_of(node.kind), node, pop.shape, self.size, fixed)
                if sim.history_depth.get(pop.name):
                    self.history[pop.name] = np.zeros((sim.history_depth[pop.name], self.size, pop.size), dtype=bool)
            self.const[pop.name] = self._constant_current(pop)
        if sim.rate_seed is not None:
            self.rngs = [np.random.default_rng([sim.rate_seed, first + i]) for i in range(self.size)]

    def const_int32(self, name: str) -> tuple[bool, np.ndarray | None]:
        """Fixed point: whether the population has direct input, and that input as int32 when it
        fits in 2**30 (computed once per batch)."""
        if name not in self._const_info:
            const = self.const[name]
            small = bool(np.any(const)) and np.abs(const).max() < 2**30
            self._const_info[name] = (bool(np.any(const)), const.astype(np.int32) if small else None)
        return self._const_info[name]

    def _constant_current(self, pop: PopulationPlan) -> np.ndarray:
        """Input from direct (analog, constant) sources through their operators, the same every
        step. In fixed point it is programmed as a per-sample bias (v units), as a host would."""
        sim = self.sim
        static = np.zeros((self.size, pop.size), dtype=np.float64)
        node = pop.node
        if sim.fixed:
            if not pop.static:
                return np.zeros((self.size, pop.size), dtype=np.int64)
            # Direct analog input enters as a per-sample bias in v units, computed by the host
            # in float64 through the composed matrix (sparse products in a fixed order), as the
            # exported Lava program does: the rounding to integers then agrees exactly.
            x64 = self.x.reshape(self.size, -1).astype(np.float64)
            for proj in pop.static:
                matrix = sim.float_projection(proj).matrix
                pre = np.ascontiguousarray(np.asarray(matrix @ x64.T).T)
                static += host_stage(sim.float_plan, proj, torch.from_numpy(pre)).numpy()
            fx = node.fixed
            lsb = np.asarray(fx.scale, dtype=np.float64).reshape(-1) / 64.0  # float value of one unit of v
            step = 2.0 ** int(fx.bias_exp)
            v_units = static / (lsb * step)
            mant = np.sign(v_units) * np.floor(np.abs(v_units) + 0.5)
            exp = int(fx.bias_exp)
            mant = mant.astype(np.int64)
            extra = (mant << exp) if exp >= 0 else (mant >> -exp)
            if node.role != READOUT and node.reset == "subtract" and not pop.dynamic:
                # Constant drive only: a neuron whose drive (bias + input) is <= 0 never fires,
                # and with drive 0 it never fires either, so the host programs max(drive, 0).
                # Exact, and the integrating 24-bit current can no longer wrap downwards
                # (the Lava program does the same: backends/lava/template/network.py).
                mant_b = np.asarray(fx.bias_mant, dtype=np.int64)
                mant_b = np.broadcast_to(mant_b, pop.shape).reshape(-1) if mant_b.size else np.zeros(pop.size, np.int64)
                own = (mant_b << exp) if exp >= 0 else (mant_b >> -exp)
                extra = np.maximum(extra, -own)
            return extra
        for proj in pop.static:
            k = sim.kernels[(proj.source, proj.target)]
            x = torch.from_numpy(self.x.reshape(self.size, -1))
            if k.w is not None:
                out = x.to(torch.float32) @ torch.from_numpy(sim.float_projection(proj).dense_weight.T.copy())
            else:
                leaves = {proj.source: torch.from_numpy(self.x)}
                out = evaluate_ops(sim.float_plan, proj.host_pool or pop.name, leaves, proj.nodes, torch.float32)
            static += host_stage(sim.float_plan, proj, out.reshape(self.size, -1)).numpy().reshape(self.size, -1)
        if node.role == READOUT and node.bias is not None and not node.leaky:
            static += node.bias.reshape(1, -1)  # an integrator sums input and bias alike (LI: its own bias)
        return static.astype(np.float32)


class Simulation:
    def __init__(self, graph: Graph, *, arithmetic: str, timing: str, rate_seed: int | None) -> None:
        if arithmetic not in ARITHMETIC:
            raise ValueError(f"arithmetic must be one of {ARITHMETIC}")
        if timing not in TIMING:
            raise ValueError(f"timing must be one of {TIMING}")
        self.fixed = arithmetic == "fixed"
        self.timing = timing
        self.rate_seed = rate_seed
        self.graph = graph
        for name, node in graph.nodes.items():
            require_model(node, name, "snc's simulator", "fixed" if self.fixed else "float")
        self.plan = build_plan(graph, fixed=self.fixed)
        self._float_plan = None if self.fixed else self.plan
        if len(graph.input_names) != 1:
            raise InvalidGraph(f"the simulator runs graphs with one input, this one has {graph.input_names}")
        self.kernels: dict[tuple[str, str], ProjectionKernel] = {}
        for pop in self.plan.populations:
            for proj in pop.projections:
                dtype = torch.float32
                if self.fixed and _max_row_abs(proj) >= 2**24:
                    dtype = torch.float64  # float32 would round the integer sums
                self.kernels[(proj.source, proj.target)] = ProjectionKernel(proj, dtype)
        self.max_size = max(p.size for p in self.plan.populations)
        # Float mode: projections whose source spikes only enter integer grouped convolutions
        # (the max-pool construction) are evaluated from int8 spikes (synapses.evaluate_ops).
        self.integer_leaves: set[tuple[str, str]] = set()
        if not self.fixed:
            g = self.plan.graph
            for pop in self.plan.populations:
                for proj in pop.dynamic:
                    users = [n for n in proj.nodes if proj.source in g.inputs_of(n)]
                    if users and all(integer_shared_group(g.nodes[n]) is not None for n in users):
                        self.integer_leaves.add((proj.source, proj.target))
        base = 1 if timing == "delay" else 0
        # Recurrent graphs: a projection from a population that comes later in the order (or
        # from itself) is read from the history only, so a chunk may not be longer than its
        # shift (at least one step: every cycle holds a Delay).
        rank = {p.name: i for i, p in enumerate(self.plan.populations)}
        back = [p.delay + base for pop in self.plan.populations for p in pop.projections
                if not p.static and rank[p.source] >= rank[p.target]]
        self.max_chunk = min(back) if back else None
        self.history_depth: dict[str, int] = {}
        for name, outs in self.plan.outgoing.items():
            depth = max((p.delay + base for p in outs if not p.static), default=0)
            if depth:
                self.history_depth[name] = depth
        self.recorders: list = []
        # Fixed point: a population's summed input fits int32 when the worst case does (common),
        # which halves the memory traffic of every per-chunk operation.
        self.int32_input: dict[str, bool] = {}
        if self.fixed:
            for pop in self.plan.populations:
                worst = sum(_max_row_abs(p) * 2.0 ** max(p.weight_exp, 0) for p in pop.dynamic)
                self.int32_input[pop.name] = worst < 2**30
        self.uniform_fanout: dict[str, bool] = {}
        self.fanout_digits: dict[str, torch.Tensor] = {}
        self.fanout_f32: dict[str, torch.Tensor] = {}
        for name, fan in self.plan.fanout.items():
            self.uniform_fanout[name] = bool(fan.size and np.all(fan == fan[0]))
            if self.uniform_fanout[name] or not fan.any():
                continue
            if int(fan.sum()) < 2**24:
                # Every partial sum of spikes x fan-out is an integer below 2**24: a float32
                # matrix-vector product is exact (and reuses the float spikes of the dense path).
                self.fanout_f32[name] = torch.from_numpy(fan.astype(np.float32))
                continue
            digits = []
            rest = fan.copy()
            while True:
                digits.append(rest % 128)
                rest //= 128
                if not rest.any():
                    break
            self.fanout_digits[name] = torch.from_numpy(np.stack(digits, axis=1).astype(np.int8))

    @property
    def float_plan(self) -> Plan:
        """The float model's plan (built on first use in fixed point: only direct inputs need it)."""
        if self._float_plan is None:
            self._float_plan = build_plan(self.graph)
        return self._float_plan

    def float_projection(self, proj):
        """The float model's projection with the same source and target."""
        fp = self.float_plan.by_name[proj.target]
        (match,) = [p for p in fp.projections if p.source == proj.source]
        return match


def _max_row_abs(proj) -> float:
    return proj.row_abs_max


def simulate(
    graph: Graph,
    data: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    timesteps: int | None = None,
    batch_size: int | None = None,
    arithmetic: str = "float32",
    timing: str = "sync",
    rasters: Iterable[int] = (),
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    chunk_elements: int = CHUNK_ELEMENTS,
    recorders: Iterable = (),
) -> SimResult:
    """Simulate ``graph`` on ``data`` (N, *input_shape) for ``timesteps`` steps.

    arithmetic: ``float32`` or ``fixed`` (Loihi fixed point; needs a quantised graph).
    timing:     ``sync`` (layer-synchronous) or ``delay`` (one step per projection, as Lava).
    batch_size: samples simulated together; default (None) ``auto_batch``: at least 64, more
                while a chunk of 8 steps of the largest population stays within the working-set
                budget (fewer, larger numpy/torch operations; results do not depend on it).
    rasters:    sample indices whose full spike rasters to keep.
    seed:       seed of the Bernoulli draws of rate-encoded inputs (per sample, so results do
                not depend on the batch size).
    progress:   called as progress(samples_done, samples_total) after each batch.
    recorders:  extra bookkeeping (backends/sim/recorders.py); results in ``SimResult.extra``.
    """
    t_start = time.perf_counter()
    timesteps = int(timesteps if timesteps is not None else graph.meta.get("timesteps", 64))
    if timesteps < 1:
        raise InvalidData(f"timesteps must be >= 1, got {timesteps}")
    if batch_size is not None and batch_size < 1:
        raise InvalidData(f"batch size must be >= 1, got {batch_size}")
    has_rate = any(graph.nodes[n].encoding == "rate" for n in graph.input_names)
    sim = Simulation(graph, arithmetic=arithmetic, timing=timing, rate_seed=seed if has_rate else None)
    plan = sim.plan
    data = _check_data(graph, plan, data, timesteps)
    n_samples = len(data)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.dtype.kind not in "iu" or labels.shape != (n_samples,):
            raise InvalidData(f"labels must be {n_samples} integers, got shape {labels.shape} dtype {labels.dtype}")
    raster_set = sorted(set(int(r) for r in rasters if 0 <= int(r) < n_samples))

    stats: dict[str, PopulationStats] = {}
    for pop in plan.populations:
        node = pop.node
        stats[pop.name] = PopulationStats(
            name=pop.name,
            kind=node.kind,
            neurons=pop.present,
            timesteps=timesteps,
            spikes=np.zeros((n_samples, timesteps), dtype=np.int32),
            synops=np.zeros((n_samples, timesteps), dtype=np.int64),
            active_updates=np.zeros((n_samples, timesteps), dtype=np.int32),
            neuron_spikes=np.zeros(pop.size, dtype=np.int64),
            analog=node.role == INPUT and node.encoding == "direct",
            spiking=node.role == NEURON,
            rasters={i: np.zeros((timesteps, pop.size), dtype=bool) for i in raster_set} if node.role != READOUT else {},
        )
    outputs = {p.name: np.zeros((n_samples, p.size), dtype=np.float64) for p in plan.readouts}
    recorders = list(recorders)
    for rec in recorders:
        rec.start(sim, n_samples, timesteps)
    sim.recorders = recorders
    u_wraps: dict[str, int] = {}
    v_sats: dict[str, int] = {}

    if batch_size is None:
        batch_size = auto_batch(sim.max_size, n_samples, chunk_elements)
    for first in range(0, n_samples, batch_size):
        x = data[first:first + batch_size]
        batch = _Batch(sim, x, first)
        b = batch.size
        tc_max = max(1, min(timesteps, chunk_elements // max(1, b * sim.max_size)))
        if sim.max_chunk is not None:
            tc_max = min(tc_max, sim.max_chunk)
        for pop in plan.populations:  # analog MACs of direct inputs: the same every step
            if stats[pop.name].analog:
                nz = (x.reshape(b, -1) != 0).astype(np.int64) @ plan.fanout[pop.name]
                stats[pop.name].synops[first:first + b, :] = nz[:, None]
        for t0 in range(0, timesteps, tc_max):
            tc = min(tc_max, timesteps - t0)
            _run_chunk(sim, batch, stats, data, t0, tc, raster_set)
        for pop in plan.readouts:
            v = batch.readout_v[pop.name]
            scale = pop.node.output_scale(timesteps)
            if pop.node.mode == "spike_count":
                outputs[pop.name][first:first + b] = v
            elif sim.fixed:
                outputs[pop.name][first:first + b] = batch.neurons[pop.name].v * (pop.node.fixed.scale / 64.0) * scale
            elif pop.node.leaky:
                outputs[pop.name][first:first + b] = batch.neurons[pop.name].v
            else:
                outputs[pop.name][first:first + b] = v * scale
        if sim.fixed:
            for name, neu in batch.neurons.items():
                u_wraps[name] = u_wraps.get(name, 0) + neu.u_wraps
                v_sats[name] = v_sats.get(name, 0) + neu.v_saturations
        if progress is not None:
            progress(min(first + b, n_samples), n_samples)

    readout = plan.readouts[0].name
    predictions = outputs[readout].argmax(axis=1)
    overflow = {}
    if sim.fixed:
        overflow = {n: {"u_wraps": u_wraps.get(n, 0), "v_saturations": v_sats.get(n, 0)} for n in u_wraps if u_wraps[n] or v_sats[n]}
    return SimResult(
        predictions=predictions,
        outputs=outputs,
        populations=stats,
        timesteps=timesteps,
        arithmetic=arithmetic,
        timing=timing,
        labels=labels,
        wall_seconds=time.perf_counter() - t_start,
        overflow=overflow,
        extra={rec.name: rec.finish() for rec in recorders},
    )


def auto_batch(max_size: int, n_samples: int, chunk_elements: int = CHUNK_ELEMENTS) -> int:
    """The default batch: 64 samples, or more while 8 steps of the largest population fit in
    ``chunk_elements`` (small networks: the per-operation overhead is spread over more samples)."""
    return max(1, min(max(n_samples, 1), max(64, chunk_elements // (8 * max(1, max_size)))))


def _input_spikes(sim: Simulation, batch: _Batch, pop: PopulationPlan, data: np.ndarray, t0: int, tc: int) -> np.ndarray:
    node = pop.node
    b = batch.size
    if node.encoding == "spikes":
        chunk = data[batch.first:batch.first + b, t0:t0 + tc]  # (B, tc, *shape)
        return np.ascontiguousarray(chunk.reshape(b, tc, -1).transpose(1, 0, 2))
    p = batch.x.reshape(b, -1)
    out = np.empty((tc, b, pop.size), dtype=bool)
    for i in range(b):
        out[:, i, :] = batch.rngs[i].random((tc, pop.size), dtype=np.float32) < p[i]
    return out


def _run_chunk(sim: Simulation, batch: _Batch, stats, data, t0: int, tc: int, raster_set: list[int]) -> None:
    plan = sim.plan
    b = batch.size
    rows = tc * b
    spikes: dict[str, np.ndarray] = {}  # what each population emitted in this chunk, (tc, B, n)
    seen: dict[str, np.ndarray] = {}  # what its targets see (delayed by one step in delay timing)
    as_float: dict[tuple[str, int], torch.Tensor] = {}
    masks: dict[str, np.ndarray] = {}
    want_masks = any(rec.wants_masks for rec in sim.recorders)

    def visible(src: str, delay: int = 0) -> np.ndarray:
        """What a target sees of ``src`` in this chunk through ``delay`` steps of synaptic delay
        (plus one step in delay timing): the source's spikes of step t - shift, from the
        history of earlier chunks where t - shift falls before this one."""
        shift = delay + (1 if sim.timing == "delay" else 0)
        key = (src, shift)
        if key not in seen:
            if shift == 0:
                seen[key] = spikes[src]
            elif shift >= tc:  # all from earlier chunks (a recurrent source may not have run yet)
                seen[key] = batch.history[src][-shift:][:tc]
            else:
                seen[key] = np.concatenate([batch.history[src][-shift:], spikes[src][:tc - shift]])
        return seen[key]

    def float_of(src: str, delay: int = 0) -> torch.Tensor:
        key = (src, delay)
        if key not in as_float:
            as_float[key] = torch.from_numpy(visible(src, delay).reshape(rows, -1).view(np.uint8)).to(torch.float32)
        return as_float[key]

    def int8_of(src: str, delay: int = 0) -> torch.Tensor:
        return torch.from_numpy(visible(src, delay).reshape(rows, -1).view(np.int8))

    pending: list = []  # populations whose synaptic operations are counted at the end of the chunk

    totals: dict[str, int] = {}  # spikes each population emitted in this chunk

    def record(st, pop, s) -> None:
        if record_spikes(sim, batch, st, pop, s, t0, tc, raster_set):
            pending.append((st, pop, s))
        totals[pop.name] = int(st.spikes[batch.first:batch.first + b, t0:t0 + tc].sum())

    def event_count(src: str, delay: int = 0) -> int:
        """Spikes a target sees from ``src`` in this chunk (counted once, when ``src`` ran)."""
        if delay == 0 and sim.timing != "delay" and src in totals:
            return totals[src]
        return int(np.count_nonzero(visible(src, delay)))

    for pop in plan.populations:
        node = pop.node
        st = stats[pop.name]
        if node.role == INPUT:
            if node.encoding == "direct":
                continue
            s = _input_spikes(sim, batch, pop, data, t0, tc)
            spikes[pop.name] = s
            record(st, pop, s)
            continue
        if node.role == READOUT and node.mode == "spike_count":
            (proj,) = pop.projections
            batch.readout_v[pop.name] += np.count_nonzero(spikes[proj.source], axis=0)
            continue
        if not sim.fixed and node.role != READOUT and not pop.dynamic:
            # Only direct (analog) input: the same current every step.
            s = np.empty((tc, b, pop.size), dtype=bool)
            mask = np.empty((tc, b, pop.size), dtype=bool) if want_masks else None
            st.active_updates[batch.first:batch.first + b, t0:t0 + tc] = batch.neurons[pop.name].run_constant(batch.const[pop.name], s, mask).T
            if mask is not None:
                masks[pop.name] = mask
            spikes[pop.name] = s
            record(st, pop, s)
            continue
        current = _synaptic_current(sim, batch, pop, visible, float_of, int8_of, event_count, rows, st)
        current = current.reshape(tc, b, pop.size)
        if node.role == READOUT and node.leaky and not sim.fixed:
            dummy = np.zeros((tc, b, pop.size), dtype=bool)
            mask = np.empty((tc, b, pop.size), dtype=bool) if want_masks else None
            drive = (current + batch.const[pop.name]).astype(np.float32)
            st.active_updates[batch.first:batch.first + b, t0:t0 + tc] = batch.neurons[pop.name].run(drive, dummy, mask).T
            if mask is not None:
                masks[pop.name] = mask
            continue
        if node.role == READOUT:
            # The integrator's neurons update like any other: active where the input is non-zero.
            drive = (current << 6) + batch.const[pop.name] if sim.fixed else current + batch.const[pop.name]
            nz = np.not_equal(drive, 0)
            st.active_updates[batch.first:batch.first + b, t0:t0 + tc] = row_counts(nz.reshape(tc * b, -1)).reshape(tc, b).T
            if want_masks:
                masks[pop.name] = nz
            if sim.fixed:
                dummy = np.zeros((tc, b, pop.size), dtype=bool)
                batch.neurons[pop.name].run(current, dummy, batch.const[pop.name])
            else:
                batch.readout_v[pop.name] += drive.sum(axis=0, dtype=np.float64)
            continue
        s = np.empty((tc, b, pop.size), dtype=bool)
        neu = batch.neurons[pop.name]
        mask = np.empty((tc, b, pop.size), dtype=bool) if want_masks else None
        if sim.fixed:
            const = batch.const[pop.name]
            any_const, const32 = batch.const_int32(pop.name)
            if not any_const:
                active = current
            elif current.dtype == np.int32 and const32 is not None:
                active = (current << 6) + const32  # |a| < 2**24 here: no overflow
            else:
                active = (current.astype(np.int64) << 6) + const
            nz = np.not_equal(active, 0, out=mask)
            if getattr(node, "keep", None) is not None:
                nz &= node.keep.reshape(-1)
            st.active_updates[batch.first:batch.first + b, t0:t0 + tc] = row_counts(nz.reshape(tc * b, -1)).reshape(tc, b).T
            neu.run(current, s, batch.const[pop.name])
        else:
            if pop.static:
                current = current.astype(np.float32, copy=False)
                current += batch.const[pop.name]
            st.active_updates[batch.first:batch.first + b, t0:t0 + tc] = neu.run(current, s, mask).T
        if mask is not None:
            masks[pop.name] = mask
        spikes[pop.name] = s
        record(st, pop, s)
    for st, pop, s in pending:
        # Spikes x non-uniform fan-out through a float32 product, exact (see Simulation); in
        # layer-synchronous timing the targets' dense path has usually made the float spikes.
        f = as_float.get((pop.name, 0)) if sim.timing == "sync" else None
        if f is None:
            f = torch.from_numpy(s.reshape(rows, -1).view(np.uint8)).to(torch.float32)
        counts = (f @ sim.fanout_f32[pop.name]).numpy().astype(np.int64)
        st.synops[batch.first:batch.first + b, t0:t0 + tc] = counts.reshape(tc, b).T
    if sim.recorders:
        view = ChunkView(sim, batch, t0, tc, spikes, visible, float_of, masks)
        for rec in sim.recorders:
            rec.chunk(view)
    for name, hist in batch.history.items():
        if name in spikes:
            k = len(hist)
            batch.history[name] = np.concatenate([hist, spikes[name]])[-k:] if tc < k else spikes[name][-k:].copy()


def _synaptic_current(sim: Simulation, batch: _Batch, pop: PopulationPlan, visible, float_of, int8_of, event_count, rows: int, st) -> np.ndarray:
    """Summed synaptic input of ``pop`` for the chunk: (rows, n) float32, or int64 in fixed point."""
    parts: list = []
    grouped: list = []  # op-chain projections evaluated densely together (float mode)
    for proj in pop.dynamic:
        kernel = sim.kernels[(proj.source, proj.target)]
        events = event_count(proj.source, proj.delay)
        if events == 0:
            st.chunks_event += 1
            continue
        if kernel.event_cost(events) < kernel.dense_cost(rows, binary=True):
            st.chunks_event += 1
            out = kernel.events(visible(proj.source, proj.delay).reshape(rows, -1))
        else:
            st.chunks_dense += 1
            if kernel.w_int8 is not None and kernel.dtype == torch.float32:
                out = kernel.int8_dense(int8_of(proj.source, proj.delay))
            elif kernel.w is not None:
                out = kernel.matrix_dense(float_of(proj.source, proj.delay), binary=True)
            elif not sim.fixed:
                grouped.append(proj)
                continue
            else:
                leaf = float_of(proj.source, proj.delay).to(kernel.dtype).reshape((rows,) + tuple(sim.plan.shapes[proj.source]))
                out = evaluate_ops(sim.plan, pop.name, {proj.source: leaf}, proj.nodes, kernel.dtype)
        parts.append(_shifted(out, proj, np.int32 if sim.int32_input.get(pop.name) else np.int64) if sim.fixed else out)
    leaves: dict[str, torch.Tensor] = {}
    if grouped:
        for p in grouped:
            # Spikes that only enter integer max-pool convolutions stay int8 (no float32 copy).
            of = int8_of if (p.source, p.target) in sim.integer_leaves else float_of
            leaves[p.source] = of(p.source, p.delay).reshape((rows,) + tuple(sim.plan.shapes[p.source]))
        nodes = sorted({n for p in grouped for n in p.nodes}, key=pop.ops.index)
        parts.append(evaluate_ops(sim.plan, pop.name, leaves, nodes, torch.float32))
    if sim.fixed:
        dtype = np.int32 if sim.int32_input.get(pop.name) else np.int64
        if len(parts) == 1:
            return parts[0]
        total = np.zeros((rows, pop.size), dtype=dtype)
        for part in parts:
            total += part
        return total
    if not parts:
        return np.zeros((rows, pop.size), dtype=np.float32)
    first = parts[0]
    if len(parts) == 1 and not first.is_floating_point():
        # Exact integer sums (int8 GEMM, integer max-pool construction): the neuron loop converts
        # them on the fly. They are fresh tensors, never views of the spikes.
        return first.numpy()
    # GEMM, gather and int8 results are fresh tensors; only an operator chain (the last part when
    # ``grouped``) may return a view of a cached source tensor, which must not be modified in place.
    aliased = bool(grouped) and len(parts) == 1 and _shares_memory(first, list(leaves.values()))
    total = first.to(torch.float32, copy=aliased)
    for part in parts[1:]:
        total += part.to(torch.float32)
    return total.contiguous().numpy()


def _shares_memory(t: torch.Tensor, others: list[torch.Tensor]) -> bool:
    ptr = t.untyped_storage().data_ptr()
    return any(o.untyped_storage().data_ptr() == ptr for o in others)


def _shifted(out: torch.Tensor, proj, dtype=np.int64) -> np.ndarray:
    """Fixed point: the exact integer sum of one projection, shifted by its weight exponent (floor)."""
    a = out.numpy()
    a = a.astype(dtype, copy=False) if a.dtype.kind in "iu" else np.rint(a).astype(dtype)
    e = proj.weight_exp
    if e == 0:
        return a
    return (a << e) if e > 0 else (a >> -e)
