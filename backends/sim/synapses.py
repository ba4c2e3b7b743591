"""Synaptic input of a population for a chunk of time steps: dense products or event gathers.

For each projection and chunk the simulator picks the cheaper of

* **dense**: the whole chunk of source activity (R = Tc x B rows) through the operators
  (a GEMM for matrix-shaped projections - an exact int8 GEMM when the weights are small integers
  and the spikes binary - or torch convolutions/pooling for the rest), cost ~ R x MACs;
* **events**: only the neurons that spiked: their columns of the synaptic matrix are gathered and
  summed, cost ~ spikes x fan-out.

The choice is made per population and chunk from the spike counts measured in that chunk
(``choose_events``) with per-operation costs measured on this kind of machine
(``benchmarks/sim_kernels.py``, recorded in docs/benchmarks.md).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from .. import dense_ops
from .counting import row_counts
from ..plan import Plan, Projection

# Seconds per operation, measured by benchmarks/sim_kernels.py (2-core Xeon with AMX, torch 2.13;
# see docs/benchmarks.md). Only their ratios matter: they set where the event path starts to win.
COST_GEMM_F32 = 6.2e-12  # per multiply-accumulate, float32 GEMM
COST_GEMM_INT8 = 9.4e-13  # per multiply-accumulate, int8 GEMM (AMX/VNNI)
COST_CONV = 8.3e-12  # per multiply-accumulate, torch conv / pooling
COST_GATHER_DENSE = 6.4e-11  # per gathered weight, embedding-bag over a dense matrix (reference machine; the
# simulator uses its own measurement relative to COST_GEMM_F32: gather_dense_cost)
COST_GATHER_SPARSE = 1.3e-8  # per gathered weight, sparse x sparse product
COST_FIXED = 2.0e-6  # per projection and chunk, fixed overhead of either path
# Once per simulation, per synapse: building a composed convolution's sparse matrix for the event
# path (measured on a 16->32 channel 3x3 convolution over 30x30, 3.6 M synapses: 0.48 s). The
# first chunk that would take the event path pays it, so a short run keeps the dense path.
COST_MATRIX_BUILD = 1.3e-7


_INT8_FAST: bool | None = None


def int8_gemm_is_fast() -> bool:
    """Whether torch's exact int8 GEMM beats the float32 GEMM on this CPU (measured once per
    process on a 256 x 1024 x 512 product). It does by ~7x with AMX/VNNI; on CPUs without them
    torch falls back to a reference kernel ~100x slower than float32. Both are exact here
    (integer weights, 0/1 spikes, sums far below 2**24), so the choice changes no result."""
    global _INT8_FAST
    if _INT8_FAST is None:
        import time

        a8 = torch.ones((256, 1024), dtype=torch.int8)
        b8 = torch.ones((1024, 512), dtype=torch.int8)
        af, bf = a8.float(), b8.float()
        best = {}
        for name, fn in (("int8", lambda: torch._int_mm(a8, b8)), ("f32", lambda: af @ bf)):
            fn()
            t0 = time.perf_counter()
            for _ in range(3):
                fn()
            best[name] = time.perf_counter() - t0
        _INT8_FAST = best["int8"] < best["f32"]
    return _INT8_FAST


_GATHER_DENSE: float | None = None


def gather_dense_cost() -> float:
    """Seconds per gathered weight of the dense event path (embedding-bag), on this CPU: the
    ratio of an embedding-bag to a float32 GEMM measured once per process (spikes at 20 % over a
    256 x 512 matrix, fastest of 3), times COST_GEMM_F32. The constant was measured on a Xeon
    with AMX; on an AMD EPYC the GEMM is ~2.5x slower and the gather ~1.5x faster relative to
    it, which moves the break-even. Either path gives the same sums, so this changes no result."""
    global _GATHER_DENSE
    if _GATHER_DENSE is None:
        import time

        gen = torch.Generator().manual_seed(0)
        spikes = torch.rand((512, 256), generator=gen) < 0.2
        w = torch.rand((256, 512), generator=gen)
        x = spikes.to(torch.float32)
        flat = torch.nonzero(spikes.reshape(-1)).reshape(-1)
        cols = flat % 256
        counts = spikes.sum(dim=1)
        offsets = torch.cumsum(counts, 0) - counts
        best = {}
        for name, fn in (("gemm", lambda: x @ w), ("gather", lambda: F.embedding_bag(cols, w, offsets, mode="sum"))):
            fn()
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            best[name] = min(times)
        per_mac = best["gemm"] / (512 * 256 * 512)
        per_weight = best["gather"] / (int(flat.numel()) * 512)
        _GATHER_DENSE = COST_GEMM_F32 * per_weight / per_mac
    return _GATHER_DENSE


class ProjectionKernel:
    """Pre-arranged weights of one projection for both paths."""

    def __init__(self, proj: Projection, dtype: torch.dtype) -> None:
        self.proj = proj
        self.dtype = dtype
        self.n_target, self.n_source = proj.shape
        if proj.dense_weight is not None:
            w = proj.dense_weight.astype(np.float64 if dtype == torch.float64 else np.float32)
            self.w = torch.from_numpy(np.ascontiguousarray(w))  # (n_target, n_source)
            self.wt = torch.from_numpy(np.ascontiguousarray(w.T))  # (n_source, n_target) for gathers
            self.w_int8 = (
                torch.from_numpy(np.ascontiguousarray(proj.dense_weight.T.astype(np.int8)))
                if proj.int_exact == "int8" and int8_gemm_is_fast() else None
            )
        else:
            self.w = self.wt = self.w_int8 = None
        self._mt = None
        self.avg_fanout = proj.synapses / max(1, self.n_source)

    @property
    def mt(self):
        """The transposed synaptic matrix (n_source, n_target) CSR for the event path (built on first use)."""
        if self._mt is None:
            self._mt = self.proj.matrix.T.tocsr().astype(np.float64 if self.dtype == torch.float64 else np.float32)
        return self._mt

    # --- costs ----------------------------------------------------------------------------
    def dense_cost(self, rows: int, binary: bool) -> float:
        if self.w is not None:
            per = COST_GEMM_INT8 if (binary and self.w_int8 is not None) else COST_GEMM_F32
            return COST_FIXED + rows * self.n_source * self.n_target * per
        return COST_FIXED + rows * self.proj.dense_macs * COST_CONV

    def event_cost(self, events: int) -> float:
        if self.w is not None:
            return COST_FIXED + events * self.n_target * gather_dense_cost()
        build = self.proj.synapses * COST_MATRIX_BUILD if self._mt is None else 0.0
        return COST_FIXED + events * self.avg_fanout * COST_GATHER_SPARSE + build

    # --- the two paths --------------------------------------------------------------------
    def matrix_dense(self, x: torch.Tensor, binary: bool) -> torch.Tensor:
        """x: (R, n_source) float (0/1 when binary). Returns (R, n_target)."""
        if binary and self.w_int8 is not None and self.dtype != torch.float64:
            return torch._int_mm(x.to(torch.int8), self.w_int8).to(self.dtype)
        return x.to(self.dtype) @ self.wt

    def int8_dense(self, spikes: torch.Tensor) -> torch.Tensor:
        """spikes: (R, n_source) int8 0/1. Exact int32 sums through the int8 GEMM."""
        return torch._int_mm(spikes, self.w_int8)

    def events(self, spikes: np.ndarray) -> torch.Tensor:
        """spikes: (R, n_source) bool. Returns (R, n_target) summed columns of the spiking sources."""
        flat = np.flatnonzero(spikes)  # row-major: rows in order, columns ascending in each
        cols = flat % spikes.shape[1]
        counts = row_counts(spikes)
        if self.w is not None:
            offsets = np.cumsum(counts) - counts
            return F.embedding_bag(torch.from_numpy(cols), self.wt, torch.from_numpy(offsets), mode="sum")
        # The spikes as a CSR matrix straight from their positions (canonical: sorted, no duplicates).
        indptr = np.concatenate(([0], np.cumsum(counts)))
        ones = np.ones(flat.size, dtype=np.float32 if self.dtype != torch.float64 else np.float64)
        s = sp.csr_matrix((ones, cols, indptr), shape=spikes.shape)
        out = (s @ self.mt).toarray()
        return torch.from_numpy(out)


_INT_LIMIT = 2**15  # integer intermediate values stay below this (int8 / int16); larger ones go to float


def _int_dtype(bound: int) -> torch.dtype:
    return torch.int8 if bound < 2**7 else torch.int16


def _exact_multiples(scale: np.float32, bound: int) -> bool:
    """Whether scale * m is a float32 number for every integer |m| <= bound (then every partial
    sum of such terms is exact, in any order)."""
    m = np.arange(1, bound + 1, dtype=np.float64)
    return bool(np.all((np.float32(scale) * m.astype(np.float32)).astype(np.float64) == float(scale) * m))


def integer_shared_group(node) -> tuple[np.ndarray, np.float32, int] | None:
    """A grouped convolution with a shared kernel (dense_ops.shared_group_weight) whose kernel
    is ``scale * k`` with integer k, no padding: (k as int64, scale, the largest sum of |k| of
    one output). ``evaluate_ops`` computes it in integers on integer (spike) input. Else None."""
    if node.kind != "Conv2d" or node.groups <= 1 or any(node.padding):
        return None
    w1 = dense_ops.shared_group_weight(node)
    if w1 is None or not np.any(w1):
        return None
    scale = np.float32(np.abs(w1[w1 != 0]).min())
    k = np.round(w1.astype(np.float64) / float(scale))
    if not np.array_equal((k * float(scale)).astype(np.float32), w1.astype(np.float32)):
        return None
    return k.astype(np.int64), scale, int(np.abs(k).reshape(k.shape[0], -1).sum(axis=1).max())


def _memo(plan: Plan, what: str, name: str, fn, node):
    key = (what, name)
    if key not in plan.memo:
        plan.memo[key] = fn(node)
    return plan.memo[key]


def evaluate_ops(plan: Plan, target: str, leaves: dict[str, torch.Tensor], nodes: list[str], dtype: torch.dtype) -> torch.Tensor:
    """Dense evaluation of the operators ``nodes`` (topological) feeding ``target``, with the
    given source tensors (R, *shape) as leaves; inputs of Add/Concat that are not on these paths
    contribute zero.

    A leaf may be an integer tensor of 0/1 spikes (int8). Grouped convolutions with a shared
    kernel ``scale * k`` (``integer_shared_group``: the spiking max-pool construction) and Adds
    of their results are then computed as integers m with a common scale: the value is
    ``scale * m``, |m| within a bound that keeps int8 / int16 exact and every ``scale * m`` a
    float32 number. In ``dtype`` each product and partial sum of these operators is then exact
    too, in any order, so both give the same values; any other operator gets its input converted
    (``m * scale``, exact) first. The result is an integer tensor when it stayed one with scale 1."""
    graph, shapes = plan.graph, plan.shapes
    values: dict[str, torch.Tensor] = dict(leaves)
    ints: dict[str, tuple[int, np.float32]] = {k: (1, np.float32(1.0)) for k, v in leaves.items() if not v.is_floating_point()}  # (bound, scale)
    rows = next(iter(leaves.values())).shape[0]

    def as_float(name: str) -> torch.Tensor:
        info = ints.pop(name, None)
        if info is not None:
            values[name] = values[name].to(dtype)
            if info[1] != 1:
                values[name] *= float(info[1])
        return values[name]

    def int_sum(names: list[str]) -> tuple[torch.Tensor, tuple[int, np.float32]] | None:
        if not all(i in ints for i in names) or len({ints[i][1] for i in names}) != 1:
            return None
        bound, scale = sum(ints[i][0] for i in names), ints[names[0]][1]
        if bound >= _INT_LIMIT or not _memo(plan, "exact", (scale, bound), lambda _: _exact_multiples(scale, bound), None):
            return None
        out_dtype = _int_dtype(bound)
        total = values[names[0]].to(out_dtype)
        for i in names[1:]:
            total = total + values[i].to(out_dtype)
        return total, (bound, scale)

    for name in nodes:
        node = graph.nodes[name]
        ins = plan.inputs_of(name)
        present = [i for i in ins if i in values]
        if not present:
            continue
        if node.kind == "Conv2d" and present[0] in ints:
            found = _memo(plan, "integer_shared_group", name, integer_shared_group, node)
            in_bound, in_scale = ints[present[0]]
            # A scaled kernel only on spikes (bound 1, scale 1): its products are then exact.
            if found is not None and (in_bound == 1 and in_scale == 1 or found[1] == 1):
                k, scale, per_out = found
                bound, scale = in_bound * per_out, np.float32(in_scale * scale)
                if bound < _INT_LIMIT and _memo(plan, "exact", (scale, bound), lambda _: _exact_multiples(scale, bound), None):
                    values[name] = dense_ops.shared_group_conv2d(node, values[present[0]], k, _int_dtype(bound))
                    ints[name] = (bound, scale)
                    continue
        if node.kind == "Add":
            summed = int_sum(present)
            if summed is not None:
                values[name], ints[name] = summed
                continue
            xs = [as_float(i) for i in present]
        elif node.kind == "Concat":
            xs = [as_float(i) if i in values else torch.zeros((rows,) + tuple(shapes[i]), dtype=dtype) for i in ins]
        else:
            xs = [as_float(present[0])]
        if node.kind == "Conv2d" and present[0] in leaves and node.groups > 1:
            # Spikes into a grouped convolution whose groups share one kernel (the spiking
            # max-pool construction): exact in any summation order, much faster.
            w1 = _memo(plan, "shared_group_weight", name, dense_ops.shared_group_weight, node)
            if w1 is not None:
                values[name] = dense_ops.shared_group_conv2d(node, xs[0], w1)
                continue
        values[name] = dense_ops.apply(node, xs)
    srcs = [src for src in plan.inputs_of(target) if src in values]
    if len(srcs) > 1:
        summed = int_sum(srcs)
        if summed is not None:
            values[target], ints[target] = summed
            srcs = [target]
    if len(srcs) == 1:
        src = srcs[0]
        if src in ints and ints[src][1] != 1:
            as_float(src)
        return values[src].reshape(rows, -1)
    out = None
    for src in srcs:
        out = as_float(src) if out is None else out + as_float(src)
    return out.reshape(rows, -1)
