"""``map``: split every spiking population into core-sized blocks and place the blocks on a mesh
of neuromorphic cores (several chips when one is not enough).

Model (all counts per core, limits from the hardware profile):

* a *block* is a run of contiguous neurons of one population (row-major flat index order);
  one block per core, never two populations on one core. Input nodes are the host: not mapped;
  neither are the synapses of a projection through a host operator (``HostMaxPool2d``): the
  host computes that current and programs it as the population's per-sample bias.
* neurons:   stop - start                                   <= neurons_per_core
* memory:    sum over the block's neurons of their incoming non-zero synapses (all projections)
             x (weight_bits + synapse_overhead_bits)        <= synaptic_memory_bits
* fan-in:    distinct source neurons (of every source population, host inputs included) with at
             least one synapse onto the block; one input axon each   <= max_fan_in
* fan-out:   one output axon per (source core, destination core) pair: the number of distinct
             destination blocks its neurons have a synapse onto      <= max_fan_out

A *projection* is the composed linear map from one source population to one target population
through the synaptic operators between them (pooling, reshapes, concatenations, residual joins;
the same walk as ``snc.backends.plan``: ``snc.ir.projections``); its non-zeros are the synapses. Weights are read from
the float ``weight`` arrays: a float zero stays zero when quantised, so this is never smaller than
the fixed-point pattern. Weight bits: ``options["weight_bits"]``, else the largest
``fixed.weight_bits`` on the projection's operators, else the profile's ``weight_bits``.

Splitting: all four quantities only grow when a block grows, so greedy maximal blocks (start at
the first unplaced neuron, extend while every limit holds) use the fewest blocks of any
contiguous split of that population, given how its destinations are split. Fan-out depends on
the destinations' blocks, so populations are split in reverse topological order: destinations
are final before their sources. A neuron that cannot fit an empty core (more input axons or
synaptic memory than a core has, or synapses onto more destination cores than it has output
axons), or a network that needs more chips than ``max_chips``, raises ``MappingError``. (Spreading
one neuron's inputs over several cores, as multi-compartment neurons allow on Loihi, is not
modelled.)

Placement: traffic(u -> v) = sum of the spike rates (spikes per step) of the neurons of block u
with at least one synapse onto block v (one message per spike and destination core). The cost is
sum over block pairs of traffic x hops, hops = east-west + north-south tile hops on the global
mesh (``snc.hw.mesh``: chips side by side along x; cores of one tile are 0 hops apart); host
traffic is left out. Blocks start in the graph's topological order along ``Mesh.snake_order``
(the reported "snake" objective), or, where cheaper, in a depth-first topological order (chains
kept together) and/or along a column-wise snake over all chips (which also crosses from chip to
chip in one hop). Rounds of pairwise swaps (with a block or an empty core: towards the
traffic-weighted centroid of a block's partners, or one tile in each direction) then apply every
improving swap that is independent of the better ones. Deterministic: no randomness and no
clock; big block graphs get fewer rounds (a fixed budget of edge evaluations).

Options (``ctx.options``): ``hw`` (profile name, path or HardwareProfile; "loihi"), ``max_chips``,
``weight_bits``, ``rates`` ({population: (n,) spikes per step}, or "uniform"), ``default_rate``
(0.1 spikes per neuron and step, used without rates and calibration), ``placement_rounds`` (24).
Without ``rates`` but with ``ctx.calibration`` the rates come from the shared calibration analysis
(``ctx.analysis``: each neuron's rate limit clip(a / theta, 0, 1), averaged over the calibration set).

Result: ``node.meta["mapping"] = {"blocks": [[start, stop, core], ...]}`` per population and
``graph.meta["mapping"]`` (hardware, chips, cores, per-core rows, objective); see ``utilisation``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import scipy.sparse as sp

from snc.backends import linear_maps
from snc.errors import InvalidGraph, MappingError
from snc.hw import HardwareProfile, load_profile
from snc.hw.mesh import Mesh
from snc.ir import HOST, NEURON, READOUT, Graph
from snc.ir.projections import fan_in

from . import PassContext
from .options import option

NAME = "map"

DEFAULT_RATE = 0.1  # spikes per neuron and step when nothing better is known
PLACEMENT_ROUNDS = 24
# Swap rounds on big block graphs stop after about this many edge evaluations (deterministic).
PLACEMENT_EDGE_BUDGET = 30_000_000
# Elements of one temporary boolean slice of a dense weight matrix (bounds memory on big layers).
CHUNK_ELEMENTS = 1 << 22
# Operators that pass a Dense operator's output (or input) through unchanged, index for index.
_IDENTITY_OPS = ("Flatten", "Reshape", "Add")
# Sliding-window operators whose synaptic pattern is read straight from the kernel.
_WINDOW_OPS = ("Conv2d", "SumPool2d", "AvgPool2d")


@dataclass
class Options:
    """Options of ``map`` (and ``hw``, the chip; ``map_strict``, whether not fitting is an error)."""

    max_chips: int | None = option(None, "most chips the network may use (default: the profile's)", check=lambda v: v >= 1,
                                   expect="an integer >= 1 or None")
    weight_bits: int | None = option(None, "weight bits per synapse in memory (default: the quantised ones, else the chip's)",
                                     check=lambda v: 1 <= v <= 64, expect="an integer 1..64 or None")
    rates: Any = option(None, "{population: per-neuron spikes per step} or 'uniform' (default: from calibration)")
    default_rate: float = option(DEFAULT_RATE, "spikes per neuron and step where nothing better is known",
                                 check=lambda v: v >= 0 and math.isfinite(v), expect="a finite rate >= 0")
    placement_rounds: int = option(PLACEMENT_ROUNDS, "rounds of pairwise swaps in placement", check=lambda v: v >= 0,
                                   expect="an integer >= 0")


RESOURCES = (
    ("neurons", "neurons_per_core", "neurons"),
    ("memory_bits", "synaptic_memory_bits", "synaptic memory"),
    ("fan_in", "max_fan_in", "input axons"),
    ("fan_out", "max_fan_out", "output axons"),
)


# ---------------------------------------------------------------------------------------------
# Connectivity of one projection.


def _distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (a sort: much faster than np.unique's hashing on small arrays)."""
    s = np.sort(values)
    return s[np.concatenate(([True], s[1:] != s[:-1]))] if s.size else s


def _first_positions(values: np.ndarray) -> np.ndarray:
    """Position of the first occurrence of each distinct value (ordered by value)."""
    n = values.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if int(values.max()) >= (1 << 62) // n:  # the packed keys below would overflow
        order = np.argsort(values, kind="stable")
        s = values[order]
        return order[np.concatenate(([True], s[1:] != s[:-1]))]
    # One sort of (value, position) packed into an int64: stable without argsort's cost.
    key = np.sort(values.astype(np.int64) * n + np.arange(n))
    v = key // n
    return key[np.concatenate(([True], v[1:] != v[:-1]))] % n


class Connectivity:
    """Where the synapses of one projection (source population -> target population) are.

    Either ``dense``: a weight matrix (n_target, n_source) whose non-zeros are the synapses (a
    Dense operator reached only through Flatten/Reshape/Add; the graph's own array, not a copy),
    or the pattern of the composed sparse matrix, kept by rows (CSR) as index arrays without
    values. Once the target is split (``starts``), the distinct source neurons of each target
    block are kept too (``block_sources``): the fan-in and traffic of the target's blocks and
    the fan-out of the source's blocks are all read from them.
    """

    def __init__(self, source: str, target: str, n_target: int, n_source: int, weight_bits: int,
                 dense: np.ndarray | None = None, pattern: sp.csr_matrix | None = None) -> None:
        self.source, self.target = source, target
        self.n_target, self.n_source = int(n_target), int(n_source)
        self.weight_bits = int(weight_bits)
        self.dense = dense
        if dense is None:
            self.r_ptr = pattern.indptr.astype(np.int64)
            self.r_idx = np.asarray(pattern.indices, dtype=np.int32)
        self.starts: np.ndarray | None = None  # block starts of the target, once split
        self._blocks: tuple | None = None  # (starts, ptr, sources), see block_sources
        self._pairs: tuple | None = None  # (starts, pair_ptr, pair_prev), see _source_pairs

    def _row_step(self) -> int:
        return max(1, CHUNK_ELEMENTS // max(1, self.n_source))

    def _by_sorting(self, synapses: int) -> bool:
        """Whether distinct sources among ``synapses`` synapses are found by sorting them (few
        synapses, many source neurons) rather than by a scan of an (n_source,) array."""
        return synapses * 8 < self.n_source

    def row_synapses(self) -> np.ndarray:
        """Non-zero synapses onto each target neuron, (n_target,) int64."""
        if self.dense is None:
            return np.diff(self.r_ptr)
        out = np.empty(self.n_target, dtype=np.int64)
        step = self._row_step()
        for r in range(0, self.n_target, step):
            out[r:r + step] = np.count_nonzero(self.dense[r:r + step], axis=1)
        return out

    def sources_of_rows(self, a: int, b: int) -> np.ndarray:
        """Sorted distinct source neurons with a synapse onto target neurons [a, b)."""
        if self.dense is None:
            seg = self.r_idx[self.r_ptr[a]:self.r_ptr[b]]
            if self._by_sorting(seg.size):
                return _distinct(seg)
            hit = np.zeros(self.n_source, dtype=bool)
            hit[seg] = True
            return np.flatnonzero(hit)
        hit = np.zeros(self.n_source, dtype=bool)
        step = self._row_step()
        for r in range(a, b, step):
            hit |= (self.dense[r:min(b, r + step)] != 0).any(axis=0)
        return np.flatnonzero(hit)

    def first_reach(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """(sources, offsets): the sorted distinct source neurons reaching target rows [a, b)
        and for each the offset (from a) of the first of those rows it reaches. The sources of
        rows [a, a + L) are those with offset < L; fan-in of [a, a + L) = count of offsets < L."""
        unseen = b - a
        if self.dense is None:
            seg = self.r_idx[self.r_ptr[a]:self.r_ptr[b]]
            itype = np.int32 if unseen < 2**31 else np.int64
            rows = np.repeat(np.arange(unseen, dtype=itype), np.diff(self.r_ptr[a:b + 1]))
            if self._by_sorting(seg.size):
                at = _first_positions(seg)
                return seg[at].astype(np.int64), rows[at]
            first = np.full(self.n_source, unseen, dtype=itype)
            np.minimum.at(first, seg, rows)
        else:
            first = np.full(self.n_source, unseen, dtype=np.int64)
            step = self._row_step()
            for r in range(a, b, step):
                nz = self.dense[r:min(b, r + step)] != 0
                new = nz.any(axis=0) & (first == unseen)
                if new.any():
                    first[new] = (r - a) + nz[:, new].argmax(axis=0)
        sources = np.flatnonzero(first < unseen)
        return sources, first[sources]

    def first_cols(self, a: int, b: int) -> np.ndarray:
        """For each target block reached from source neurons [a, b): the offset (from a) of the
        first of those neurons reaching it. fan-out of [a, a + L) = count of offsets < L."""
        if self.dense is None:
            pair_ptr, pair_prev = self._source_pairs()
            lo, hi = pair_ptr[a], pair_ptr[b]
            first = np.flatnonzero(pair_prev[lo:hi] < a) + lo  # a block's first pair in [a, b)
            return np.searchsorted(pair_ptr[a + 1:b + 1], first, side="right").astype(np.int64)
        hit = self._block_hits(a, b)
        reached = hit.any(axis=1)
        return hit[reached].argmax(axis=1).astype(np.int64)

    def blocks_of_cols(self, a: int, b: int) -> int:
        """Number of distinct target blocks reached from source neurons [a, b)."""
        return int(self.first_cols(a, b).size)

    def keep_block_sources(self, starts: np.ndarray, parts: list[np.ndarray]) -> None:
        """Record the sorted distinct source neurons of each block of the split ``starts`` (the
        splitter has them at hand); ``block_sources`` then returns them."""
        ptr = np.zeros(len(parts) + 1, dtype=np.int64)
        np.cumsum([p.size for p in parts], out=ptr[1:])
        sources = np.concatenate(parts).astype(np.int32) if parts else np.zeros(0, np.int32)
        self._blocks = (starts, ptr, sources)

    def block_sources(self) -> tuple[np.ndarray, np.ndarray]:
        """(ptr, sources): the sorted distinct source neurons of target block k (the split
        ``starts``) are sources[ptr[k]:ptr[k + 1]]. Computed once per split."""
        if self._blocks is None or self._blocks[0] is not self.starts:
            bounds = np.append(self.starts, self.n_target).astype(np.int64)
            self.keep_block_sources(self.starts, [self.sources_of_rows(int(s), int(e)) for s, e in zip(bounds[:-1], bounds[1:])])
        return self._blocks[1], self._blocks[2]

    def _source_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """The distinct (source neuron, target block) pairs, ordered by source neuron then block:
        those of source neuron s are [pair_ptr[s], pair_ptr[s + 1]); pair_prev is the previous
        source neuron reaching the same block (-1 for the first). The blocks reached from source
        neurons [a, b), each once, are their pairs with pair_prev < a."""
        if self._pairs is None or self._pairs[0] is not self.starts:
            ptr, sources = self.block_sources()
            prev = np.empty(sources.size, dtype=np.int32)  # within each block's sorted sources
            if sources.size:
                prev[1:] = sources[:-1]
                prev[ptr[:-1][np.diff(ptr) > 0]] = -1
            # Block-major -> source-major: scipy's CSR -> CSC transposition carries prev along.
            by_source = sp.csr_matrix((prev, sources, ptr), shape=(len(ptr) - 1, self.n_source)).tocsc()
            self._pairs = (self.starts, by_source.indptr.astype(np.int64), np.asarray(by_source.data, dtype=np.int32))
        return self._pairs[1], self._pairs[2]

    def _block_hits(self, a: int, b: int) -> np.ndarray:
        """(target blocks, b - a) bool: source neuron a + j has a synapse onto block k."""
        starts = self.starts
        bounds = np.append(starts, self.n_target)
        w = b - a
        hit = np.zeros((len(starts), w), dtype=bool)
        step = max(1, CHUNK_ELEMENTS // max(1, w))
        for r0 in range(0, self.n_target, step):
            r1 = min(self.n_target, r0 + step)
            nz = self.dense[r0:r1, a:b] != 0
            k0 = int(np.searchsorted(bounds, r0, side="right")) - 1
            k1 = int(np.searchsorted(bounds, r1, side="left"))
            local = np.maximum(bounds[k0:k1], r0) - r0
            hit[k0:k1] |= np.logical_or.reduceat(nz, local, axis=0)
        return hit


# ---------------------------------------------------------------------------------------------
# Projections of a spiking graph.


@dataclass
class _Population:
    name: str
    size: int
    keep: np.ndarray | None = None  # (size,) bool: neurons that exist (pruned ones do not)
    incoming: list[Connectivity] = field(default_factory=list)
    outgoing: list[Connectivity] = field(default_factory=list)
    starts: np.ndarray | None = None  # block starts, once split
    synapses: np.ndarray | None = None  # (size,) synapses onto each neuron
    bits: np.ndarray | None = None  # (size,) synaptic memory of each neuron

    @property
    def bounds(self) -> list[tuple[int, int]]:
        ends = list(self.starts[1:]) + [self.size]
        return [(int(s), int(e)) for s, e in zip(self.starts, ends)]

    def present_cumsum(self) -> np.ndarray:
        """(size + 1,) running count of existing neurons: neurons of [a, b) = c[b] - c[a]."""
        ones = np.ones(self.size, dtype=np.int64) if self.keep is None else self.keep.astype(np.int64)
        return np.concatenate(([0], np.cumsum(ones)))


def _single_op(graph: Graph, source: str, target: str, nodes: list[str], kinds: tuple[str, ...]) -> str | None:
    """The projection's one operator of a kind in ``kinds`` when it is reached only through
    index-preserving operators (``_IDENTITY_OPS``) along a single path, else None: then that
    operator's own matrix *is* the projection's."""
    found = [o for o in nodes if graph.nodes[o].kind in kinds]
    if len(found) != 1 or any(graph.nodes[o].kind not in kinds and graph.nodes[o].kind not in _IDENTITY_OPS for o in nodes):
        return None
    reach = {source, *nodes}
    for o in nodes + [target]:
        if sum(1 for i in graph.inputs_of(o) if i in reach) != 1:
            return None
    return found[0]


def _direct_dense(graph: Graph, source: str, target: str, nodes: list[str]) -> np.ndarray | None:
    """The weight matrix of the projection when it is one Dense operator reached only through
    index-preserving operators along a single path (then it *is* the synaptic matrix)."""
    op = _single_op(graph, source, target, nodes, ("Dense",))
    return None if op is None else graph.nodes[op].weight


def _window_pattern(node: Any, in_shape: tuple, out_shape: tuple) -> sp.csr_matrix:
    """The synapses of one Conv2d / SumPool2d / AvgPool2d operator as a CSR pattern of 1-byte ones
    with sorted columns, built straight from the kernel's non-zeros (the same pattern as
    ``linear_maps.matrix``'s: each (output, input) pair meets at most one kernel entry, so no sum
    can cancel; pooling's weights are all positive). Output neuron (o, i, j) reads input
    (g(o) * C_in_g + c, i * sy + m * dy - top, j * sx + n * dx - left) for each non-zero
    (c, m, n) of kernel o inside the input; per output channel, in (c, m, n) order = column order."""
    c_in, h, w = in_shape
    c_out, ho, wo = out_shape
    if node.kind == "Conv2d":
        nonzero = node.weight.reshape(c_out, -1) != 0
        c_in_g, kh, kw = node.weight.shape[1:]
        groups, (dy, dx) = int(node.groups), node.dilation
    else:  # pooling: every window position, per channel
        kh, kw = node.kernel
        nonzero = np.ones((c_out, kh * kw), dtype=bool)
        c_in_g, groups, dy, dx = 1, c_out, 1, 1
    sy, sx = node.stride
    top, left = node.padding[0], node.padding[1]
    per_group = c_out // groups
    itype = np.int32 if c_in * h * w < 2**30 and c_out * ho * wo < 2**31 else np.int64
    y0 = np.arange(ho, dtype=np.int64) * sy - top  # input row of kernel row 0, per output row
    x0 = np.arange(wo, dtype=np.int64) * sx - left
    in_y = (y0[:, None] + np.arange(kh) * dy >= 0) & (y0[:, None] + np.arange(kh) * dy < h)  # (ho, kh)
    in_x = (x0[:, None] + np.arange(kw) * dx >= 0) & (x0[:, None] + np.arange(kw) * dx < w)  # (wo, kw)
    base = (y0[:, None] * w + x0[None, :]).reshape(-1).astype(itype)  # (ho * wo,)
    # Synapses per output neuron: kernel entries at (m, n), over the (m, n) inside the input.
    per_mn = nonzero.reshape(c_out, c_in_g, kh, kw).sum(axis=1)
    counts = np.einsum("im,omn,jn->oij", in_y.astype(np.int64), per_mn, in_x.astype(np.int64))
    indptr = np.zeros(counts.size + 1, dtype=np.int64)
    np.cumsum(counts.reshape(-1), out=indptr[1:])
    indices = np.empty(int(indptr[-1]), dtype=itype)
    positions = ho * wo
    for o in range(c_out):
        k = np.flatnonzero(nonzero[o])
        if not k.size:
            continue
        c, mn = np.divmod(k, kh * kw)
        m, n = np.divmod(mn, kw)
        offset = (((o // per_group) * c_in_g + c) * (h * w) + m * dy * w + n * dx).astype(itype)
        valid = (in_y[:, None, m] & in_x[None, :, n]).reshape(-1)
        np.compress(valid, (base[:, None] + offset[None, :]).reshape(-1),
                    out=indices[indptr[o * positions]:indptr[(o + 1) * positions]])
    return sp.csr_matrix((np.ones(indices.size, np.int8), indices.astype(np.int32, copy=False), indptr),
                         shape=(c_out * ho * wo, c_in * h * w))


def _weight_bits(graph: Graph, nodes: list[str], default: int, override: Any) -> int:
    if override is not None:
        return int(override)
    bits = [int(f.weight_bits) for o in nodes if (f := getattr(graph.nodes[o], "fixed", None)) is not None]
    return max(bits) if bits else int(default)


def _synaptic_pattern(graph: Graph, shapes: dict, source: str, target: str, nodes: list[str]) -> sp.csr_matrix:
    """Where the composed matrix of the projection (``linear_maps``, float64) is non-zero, as a
    CSR matrix of 1-byte ones (the float values are dropped here, before anything else is
    allocated). A single operator's own matrix when it is the only one on the way (saves the
    product with the identity); a convolution or pooling reached through index-preserving
    operators only is read from its kernel (``_window_pattern``), without float matrices."""
    op = _single_op(graph, source, target, nodes, _WINDOW_OPS)
    if op is not None:
        return _window_pattern(graph.nodes[op], shapes[graph.inputs_of(op)[0]], shapes[op])
    m = None
    if len(nodes) == 1:
        op = nodes[0]
        ins = graph.inputs_of(op)
        feeds = graph.inputs_of(target)
        if ins.count(source) == 1 and feeds.count(op) == 1 and source not in feeds:
            m = linear_maps.matrix(graph.nodes[op], [shapes[i] for i in ins], shapes[op], ins.index(source), op)
    if m is None:
        m = linear_maps.compose(graph, shapes, source, target, nodes)
    m = sp.csr_matrix(m)
    m.eliminate_zeros()
    indices, indptr, shape = np.asarray(m.indices, dtype=np.int32), m.indptr, m.shape
    del m
    return sp.csr_matrix((np.ones(indices.size, np.int8), indices, indptr), shape=shape)


def _drop_removed(pattern: sp.csr_matrix, keep_source: np.ndarray | None, keep_target: np.ndarray | None) -> sp.csr_matrix:
    m = pattern.astype(np.float32)
    if keep_target is not None:
        m = sp.diags(keep_target.reshape(-1).astype(np.float32)) @ m
    if keep_source is not None:
        m = m @ sp.diags(keep_source.reshape(-1).astype(np.float32))
    m = sp.csr_matrix(m)
    m.eliminate_zeros()
    return sp.csr_matrix((np.ones(m.indices.size, np.int8), m.indices.astype(np.int32), m.indptr), shape=m.shape)


def projections(graph: Graph, default_bits: int, weight_bits: Any = None) -> Iterator[_Population]:
    """Every mapped population (IF, LIF, Readout) with its projections, in *reverse* topological
    order: when a population comes, its incoming projections are built and its outgoing ones are
    complete (its consumers came before). Building lazily lets a caller refuse a late layer before
    composing the early ones. Input nodes appear as sources only. Weight bits of a projection:
    ``weight_bits`` if given, else its operators' fixed-point bits, else ``default_bits``."""
    shapes = graph.validate()
    order = graph.topological_order()
    position = {n: i for i, n in enumerate(order)}
    roles = {n: graph.nodes[n].role for n in order}
    outgoing: dict[str, list[Connectivity]] = {}
    for name in reversed(order):
        if roles[name] not in (NEURON, READOUT):
            continue
        keep = getattr(graph.nodes[name], "keep", None)
        pop = _Population(name, int(np.prod(shapes[name])), None if keep is None else keep.reshape(-1))
        for edge in fan_in(graph, name, position).incoming:
            src, nodes = edge.source, list(edge.ops)
            if any(graph.nodes[o].role == HOST for o in nodes):
                # The host computes this current (a max pool on a direct input) and programs it
                # as the population's per-sample bias: no synapses, no input axons.
                continue
            n_src = int(np.prod(shapes[src]))
            bits = _weight_bits(graph, nodes, default_bits, weight_bits)
            masked = getattr(graph.nodes[src], "keep", None) is not None or pop.keep is not None
            dense = None if masked else _direct_dense(graph, src, name, nodes)
            if dense is not None:
                conn = Connectivity(src, name, pop.size, n_src, bits, dense=dense)
            else:
                pattern = _synaptic_pattern(graph, shapes, src, name, nodes)
                if masked:  # pruned neurons have no synapses
                    pattern = _drop_removed(pattern, getattr(graph.nodes[src], "keep", None), pop.keep)
                conn = Connectivity(src, name, pop.size, n_src, bits, pattern=pattern)
            pop.incoming.append(conn)
            outgoing.setdefault(src, []).append(conn)
        pop.outgoing = outgoing.pop(name, [])
        yield pop


def all_projections(graph: Graph, default_bits: int, weight_bits: Any = None) -> dict[str, _Population]:
    """``projections`` as a dict in topological order."""
    pops = list(projections(graph, default_bits, weight_bits))
    return {p.name: p for p in reversed(pops)}


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
    Each incoming projection keeps the distinct sources of every block found on the way."""
    n = pop.size
    pop.synapses = np.zeros(n, dtype=np.int64)
    pop.bits = np.zeros(n, dtype=np.int64)
    for conn in pop.incoming:
        syn = conn.row_synapses()
        pop.synapses += syn
        pop.bits += syn * (conn.weight_bits + lim.overhead)
    if n and int(pop.synapses.max()) > lim.fan_in:
        # Each projection's row counts distinct source neurons: the synapses are the axons.
        raise MappingError(
            f"the layer needs {int(pop.synapses.max())} input axons per neuron; "
            f"a {lim.hw} core offers {lim.fan_in} (max_fan_in)", node=pop.name)
    if n and int(pop.bits.max()) > lim.memory:
        k = int(np.argmax(pop.bits))
        raise MappingError(
            f"the layer needs {int(pop.bits[k])} bits of synaptic memory per neuron "
            f"({int(pop.synapses[k])} synapses); a {lim.hw} core offers {lim.memory} "
            "(synaptic_memory_bits)", node=pop.name)
    cum = np.concatenate(([0], np.cumsum(pop.bits)))
    present = pop.present_cumsum()
    starts = []
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
        b_max = min(n, by_neurons, int(np.searchsorted(cum, cum[a] + lim.memory, side="right")) - 1)
        w = min(guess + 1, b_max - a)
        while True:
            b = a + w
            end = b
            reach = [c.first_reach(a, b) for c in pop.incoming]
            cut = _kth_offset([offsets for _, offsets in reach], lim.fan_in)
            if cut is not None:
                end = min(end, a + cut)
            cut = _kth_offset([c.first_cols(a, b) for c in pop.outgoing], lim.fan_out)
            if cut is not None:
                end = min(end, a + cut)
            if end < b or b == b_max:
                break
            w = min(2 * w, b_max - a)
        if end == a:
            need = sum(c.blocks_of_cols(a, a + 1) for c in pop.outgoing)
            raise MappingError(
                f"neuron {a} of the layer sends to {need} cores (output axons); "
                f"a {lim.hw} core offers {lim.fan_out} (max_fan_out)", node=pop.name)
        for kept, (sources, offsets) in zip(block_sources, reach):
            kept.append(sources[offsets < end - a])  # pruned rows after end have no synapses
        starts.append(a)
        guess = end - a
        a = end
    starts = np.asarray(starts, dtype=np.int64)
    for conn, kept in zip(pop.incoming, block_sources):
        conn.keep_block_sources(starts, kept)
    return starts


# ---------------------------------------------------------------------------------------------
# Traffic and per-core figures.


def _block_stats(pops: dict[str, _Population], rates: dict[str, np.ndarray]) -> tuple[list[dict], np.ndarray, np.ndarray, np.ndarray]:
    """Per-block rows (population, start, stop, neurons, synapses, memory_bits, fan_in, fan_out)
    in topological order, and the traffic between blocks as (u, v, spikes per step) arrays."""
    offset: dict[str, int] = {}
    rows: list[dict] = []
    for name, pop in pops.items():
        offset[name] = len(rows)
        csyn = np.concatenate(([0], np.cumsum(pop.synapses)))
        cbits = np.concatenate(([0], np.cumsum(pop.bits)))
        present = pop.present_cumsum()
        for s, e in pop.bounds:
            rows.append({"population": name, "start": s, "stop": e, "neurons": int(present[e] - present[s]),
                         "synapses": int(csyn[e] - csyn[s]), "memory_bits": int(cbits[e] - cbits[s]),
                         "fan_in": 0, "fan_out": 0})
    us, vs, ts = [], [], []
    for name, pop in pops.items():
        for conn in pop.incoming:
            ptr, cols = conn.block_sources()  # target block k: sorted distinct sources
            fan_in = np.diff(ptr)
            for k in range(len(fan_in)):
                rows[offset[name] + k]["fan_in"] += int(fan_in[k])
            src = pops.get(conn.source)  # None for the host (Input)
            if src is None or not cols.size:
                continue
            # One (u, v) entry per run of sources in one source block u, within each block v.
            u = np.searchsorted(src.starts, cols, side="right") - 1
            v = np.repeat(np.arange(len(fan_in), dtype=np.int64), fan_in)
            seg = np.flatnonzero(np.concatenate(([True], (u[1:] != u[:-1]) | (v[1:] != v[:-1]))))
            us.append(offset[conn.source] + u[seg])
            vs.append(offset[name] + v[seg])
            ts.append(np.add.reduceat(rates[conn.source][cols], seg))
    u = np.concatenate(us) if us else np.zeros(0, np.int64)
    v = np.concatenate(vs) if vs else np.zeros(0, np.int64)
    t = np.concatenate(ts) if ts else np.zeros(0, np.float64)
    fan_out = np.bincount(u, minlength=len(rows))
    for k, row in enumerate(rows):
        row["fan_out"] = int(fan_out[k])
    return rows, u.astype(np.int64), v.astype(np.int64), t.astype(np.float64)


# ---------------------------------------------------------------------------------------------
# Placement.


class _Placer:
    """Pairwise-swap improvement of a block -> core assignment (items >= n_blocks are empty
    cores). Cost = sum over block pairs of traffic x tile hops."""

    def __init__(self, mesh: Mesh, chips: int, n_blocks: int, u: np.ndarray, v: np.ndarray, t: np.ndarray) -> None:
        self.mesh = mesh
        self.slots = chips * mesh.cores_per_chip
        self.n_blocks = n_blocks
        _, gx, gy = mesh.coordinates(np.arange(self.slots))
        self.gx, self.gy = gx.astype(np.int32), gy.astype(np.int32)
        self.width = chips * mesh.tiles_x
        a = sp.coo_matrix((t, (u, v)), shape=(self.slots, self.slots)).tocsr()
        a = (a + a.T).tocsr()
        a.setdiag(0)
        a.eliminate_zeros()
        a.sum_duplicates()
        self.ptr, self.nbr, self.w = a.indptr.astype(np.int64), a.indices.astype(np.int32), a.data
        self.degree = np.diff(self.ptr)
        self.edge_row = np.repeat(np.arange(self.slots, dtype=np.int32), self.degree)
        self.occupant = np.empty(self.slots, dtype=np.int64)
        self.start(mesh.snake_order(self.slots))

    def start(self, cores: np.ndarray, rank: np.ndarray | None = None) -> None:
        """Block i on cores[rank[i]] (rank: the block's place in a population order; default the
        topological order), empty cores on the rest."""
        cores = np.asarray(cores, dtype=np.int64)
        self.pos = cores.copy()
        if rank is not None:
            self.pos[: self.n_blocks] = cores[rank]
        self.occupant[self.pos] = np.arange(self.slots)

    def column_snake(self) -> np.ndarray:
        """Cores tile column by tile column over the chips' global mesh, every other column
        reversed: like ``Mesh.snake_order`` it fills chip after chip, but consecutive tiles are
        always neighbours, also from one chip to the next."""
        m = self.mesh
        cols = []
        for gx in range(self.width):
            ys = range(m.tiles_y) if gx % 2 == 0 else range(m.tiles_y - 1, -1, -1)
            for ty in ys:
                first = (gx // m.tiles_x) * m.cores_per_chip + (ty * m.tiles_x + gx % m.tiles_x) * m.cores_per_tile
                cols.extend(range(first, first + m.cores_per_tile))
        return np.asarray(cols, dtype=np.int64)

    def _coords(self) -> tuple[np.ndarray, np.ndarray]:
        """Tile coordinates of every item where it sits now."""
        return self.gx[self.pos], self.gy[self.pos]

    def cost(self) -> float:
        x, y = self._coords()
        d = np.abs(x[self.edge_row] - x[self.nbr]) + np.abs(y[self.edge_row] - y[self.nbr])
        return float(0.5 * np.dot(self.w, d))

    def _expand(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(candidate number, edge index) of every edge of the given items."""
        counts = self.degree[items]
        cand = np.repeat(np.arange(len(items), dtype=np.int32), counts)
        e = np.arange(int(counts.sum()), dtype=np.int64)
        e += np.take(self.ptr[items] - (np.cumsum(counts) - counts), cand)
        return cand, e

    def _side(self, i: np.ndarray, j: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Change of the costs of i's edges when i and j swap cores, an i-j edge counted as
        unchanged (its length stays); delta of the swap = _side(i, j) + _side(j, i)."""
        cand, e = self._expand(i)
        n = self.nbr[e]
        xn, yn = x[n], y[n]
        # |x_j - x_n| + |y_j - y_n| - |x_i - x_n| - |y_i - y_n| per edge, in place (int32).
        change = np.take(x[j], cand)
        change -= xn
        np.abs(change, out=change)
        part = np.take(y[j], cand)
        part -= yn
        np.abs(part, out=part)
        change += part
        np.take(x[i], cand, out=part)
        part -= xn
        np.abs(part, out=part)
        change -= part
        np.take(y[i], cand, out=part)
        part -= yn
        np.abs(part, out=part)
        change -= part
        change[n == np.take(j, cand)] = 0
        return np.bincount(cand, self.w[e] * change, minlength=len(i))

    def _candidates(self, kind: str, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        i = np.flatnonzero(self.degree[: self.n_blocks] > 0)
        if not i.size:
            return i, i
        xi, yi = x[i], y[i]
        if kind == "centroid":
            cand, e = self._expand(i)
            n = self.nbr[e]
            w = self.w[e]
            wsum = np.bincount(cand, w, minlength=len(i))
            tx = np.rint(np.bincount(cand, w * x[n], minlength=len(i)) / wsum).astype(np.int64)
            ty = np.rint(np.bincount(cand, w * y[n], minlength=len(i)) / wsum).astype(np.int64)
        else:
            dx, dy = {"+x": (1, 0), "-x": (-1, 0), "+y": (0, 1), "-y": (0, -1)}[kind]
            tx, ty = xi.astype(np.int64) + dx, yi.astype(np.int64) + dy
        tx = np.clip(tx, 0, self.width - 1)
        ty = np.clip(ty, 0, self.mesh.tiles_y - 1)
        m = self.mesh
        slot = self.pos[i] % m.cores_per_tile
        target = (tx // m.tiles_x) * m.cores_per_chip + ((ty * m.tiles_x + tx % m.tiles_x) * m.cores_per_tile) + slot
        keep = (tx != xi) | (ty != yi)
        return i[keep], self.occupant[target[keep]]

    def improve(self, rounds: int) -> int:
        """Swap rounds; returns how many rounds ran. Big block graphs get fewer rounds: about
        PLACEMENT_EDGE_BUDGET edge evaluations in all, never fewer than one of each kind."""
        kinds = ("centroid", "+x", "-x", "+y", "-y")
        if not self.w.size:
            return 0
        rounds = min(rounds, max(len(kinds), PLACEMENT_EDGE_BUDGET // (3 * self.w.size)))
        tol = 1e-9 * float(self.w.max())
        idle = 0
        done = 0
        for r in range(rounds):
            if idle >= len(kinds):
                break
            done += 1
            x, y = self._coords()
            i, j = self._candidates(kinds[r % len(kinds)], x, y)
            if not i.size:
                idle += 1
                continue
            delta = self._side(i, j, x, y) + self._side(j, i, x, y)
            order = np.argsort(delta, kind="stable")
            order = order[delta[order] < -tol]
            locked = np.zeros(self.slots, dtype=bool)
            took_i, took_j = [], []
            for k in order.tolist():
                a, b = int(i[k]), int(j[k])
                if locked[a] or locked[b]:
                    continue
                # Independent swaps only: no moved item touches another swap's items, so each
                # delta stays exact and the improvements add up.
                locked[a] = locked[b] = True
                locked[self.nbr[self.ptr[a]:self.ptr[a + 1]]] = True
                locked[self.nbr[self.ptr[b]:self.ptr[b + 1]]] = True
                took_i.append(a)
                took_j.append(b)
            if not took_i:
                idle += 1
                continue
            idle = 0
            a, b = np.asarray(took_i), np.asarray(took_j)
            pa, pb = self.pos[a].copy(), self.pos[b].copy()
            self.pos[a], self.pos[b] = pb, pa
            self.occupant[pb], self.occupant[pa] = a, b
        return done


def _depth_first_rank(pops: dict[str, _Population]) -> np.ndarray:
    """Place of each block (topological numbering) in a depth-first topological order of the
    populations: after a population, the consumers it made ready come first, so chains stay
    together even where the graph's own order interleaves independent branches."""
    names = list(pops)
    index = {n: i for i, n in enumerate(names)}
    waiting = [len({c.source for c in pops[n].incoming if c.source in pops}) for n in names]
    users = [sorted({index[c.target] for c in pops[n].outgoing}) for n in names]
    stack = [i for i in reversed(range(len(names))) if waiting[i] == 0]
    sequence = []
    while stack:
        i = stack.pop()
        sequence.append(i)
        ready = []
        for j in users[i]:
            waiting[j] -= 1
            if waiting[j] == 0:
                ready.append(j)
        stack.extend(reversed(ready))
    first = np.cumsum([0] + [len(pops[n].starts) for n in names])
    blocks = np.concatenate([np.arange(first[i], first[i + 1]) for i in sequence])
    rank = np.empty(len(blocks), dtype=np.int64)
    rank[blocks] = np.arange(len(blocks))
    return rank


# ---------------------------------------------------------------------------------------------
# Rates.


def _rates(graph: Graph, ctx: PassContext, pops: dict[str, _Population]) -> tuple[dict[str, np.ndarray], str]:
    given = ctx.options.get("rates")
    if not (given is None or given == "uniform" or isinstance(given, dict)):
        raise MappingError(f"option rates must be a dict of per-neuron rates or 'uniform', got {given!r}")
    default = float(ctx.options.get("default_rate", DEFAULT_RATE))
    if not (np.isfinite(default) and default >= 0):
        raise MappingError(f"option default_rate must be a finite rate >= 0, got {default}")
    rates = {name: np.full(pop.size, default) for name, pop in pops.items()}
    if isinstance(given, dict):
        for name, value in given.items():
            if name not in pops:
                continue
            r = np.asarray(value, dtype=np.float64).ravel()
            if r.size == 1:
                r = np.full(pops[name].size, float(r[0]))
            if r.size != pops[name].size or not np.all(np.isfinite(r)) or np.any(r < 0):
                raise MappingError(f"rates must be {pops[name].size} finite non-negative values (spikes per step)", node=name)
            rates[name] = r
        return rates, "given"
    if given is None:
        # The shared calibration analysis: rate-limit rates, from balance's thresholds (no simulation).
        measured = ctx.analysis.rates(graph) if ctx.calibration is not None and len(ctx.calibration) else None
        if measured is not None:
            for name in pops:
                r = measured.get(name)
                if r is not None and r.size == pops[name].size:
                    rates[name] = np.asarray(r, dtype=np.float64)
            return rates, f"rate limit of {len(ctx.calibration)} calibration samples (calibration analysis)"
    return rates, f"uniform {default:g}"


# ---------------------------------------------------------------------------------------------
# The pass.


def _profile(ctx: PassContext) -> HardwareProfile:
    profile = load_profile(ctx.options.get("hw", "loihi"))
    if profile.kind != "neuromorphic":
        raise MappingError(f"hardware profile {profile.name!r} is not a neuromorphic chip (kind {profile.kind!r})")
    return profile


def map_to_cores(graph: Graph, ctx: PassContext) -> Graph:
    """Map onto ``ctx.options["hw"]``. With ``options["map_strict"] = False`` (the default pipeline
    when no target was asked for) a network that does not fit is reported, not refused."""
    if ctx.options.get("map_strict", True):
        return _map(graph, ctx)
    try:
        return _map(graph, ctx)
    except MappingError as exc:
        ctx.note(NAME, f"not mapped: {exc.message} (node {exc.node!r}); choose another --hw to map it", node=exc.node)
        return graph.copy()


def _map(graph: Graph, ctx: PassContext) -> Graph:
    profile = _profile(ctx)
    if not graph.is_spiking:
        raise InvalidGraph("map needs a spiking graph (run convert first)")
    lim = _Limits(profile.name, int(profile["neurons_per_core"]), int(profile["synaptic_memory_bits"]),
                  int(profile["synapse_overhead_bits"]), int(profile["max_fan_in"]), int(profile["max_fan_out"]))
    max_chips = ctx.options.get("max_chips")
    if max_chips is None:
        max_chips = profile.get("max_chips")
    if max_chips is not None and int(max_chips) < 1:
        raise MappingError(f"max_chips must be >= 1, got {max_chips}")
    mesh = Mesh.from_profile(profile)
    cpc = mesh.cores_per_chip

    weight_bits = ctx.options.get("weight_bits")
    if weight_bits is not None and (isinstance(weight_bits, bool) or int(weight_bits) != weight_bits or weight_bits < 1):
        raise MappingError(f"option weight_bits must be a positive integer, got {weight_bits!r}")
    split = []
    for pop in projections(graph, int(profile["weight_bits"]), weight_bits):
        pop.starts = _split(pop, lim)
        for conn in pop.incoming:  # the same objects are its sources' outgoing projections
            conn.starts = pop.starts
        split.append(pop)
    pops = {p.name: p for p in reversed(split)}  # topological order

    n_blocks = sum(len(p.starts) for p in pops.values())
    chips = max(1, math.ceil(n_blocks / cpc))
    if max_chips is not None and chips > int(max_chips):
        budget = int(max_chips) * cpc
        used = 0
        for name, pop in pops.items():
            if used + len(pop.starts) > budget:
                raise MappingError(
                    f"the layer needs {len(pop.starts)} cores but only {budget - used} of the {budget} cores of "
                    f"{int(max_chips)} {profile.name} chip(s) are left (the network needs {n_blocks} cores, "
                    f"{chips} chips)", node=name)
            used += len(pop.starts)

    rates, rate_source = _rates(graph, ctx, pops)
    rows, u, v, t = _block_stats(pops, rates)

    placer = _Placer(mesh, chips, n_blocks, u, v, t)
    before = placer.cost()
    best = (before, placer.pos)
    depth_first = _depth_first_rank(pops)
    for cores, rank in ((placer.pos, depth_first), (placer.column_snake(), None), (placer.column_snake(), depth_first)):
        placer.start(cores, rank)
        if placer.cost() < best[0]:
            best = (placer.cost(), placer.pos)
    placer.start(best[1])
    start = best[0]
    rounds = placer.improve(int(ctx.options.get("placement_rounds", PLACEMENT_ROUNDS)))
    after = placer.cost()
    cores = placer.pos[:n_blocks]

    g = graph.copy()
    k = 0
    for name, pop in pops.items():
        blocks = []
        for s, e in pop.bounds:
            blocks.append([s, e, int(cores[k])])
            rows[k] = {"core": int(cores[k]), **rows[k]}
            k += 1
        node = g.nodes[name]
        g.replace(name, node.replace(meta={**node.meta, "mapping": {"blocks": blocks}}))
    rows.sort(key=lambda r: r["core"])
    limits = {"neurons_per_core": lim.neurons, "synaptic_memory_bits": lim.memory, "max_fan_in": lim.fan_in,
              "max_fan_out": lim.fan_out, "synapse_overhead_bits": lim.overhead}
    g.meta["mapping"] = {
        "hw": profile.name,
        "chips": chips,
        "cores_used": n_blocks,
        "cores_per_chip": cpc,
        "mesh_tiles": [mesh.tiles_x, mesh.tiles_y],
        "cores_per_tile": mesh.cores_per_tile,
        "max_chips": None if max_chips is None else int(max_chips),
        "limits": limits,
        "rates": rate_source,
        "objective": after,
        "objective_snake": before,
        "objective_start": start,
        "placement_rounds": rounds,
        "cores": rows,
    }
    _notes(ctx, g, pops, (before, start, after), rounds, rate_source)
    return g


def _notes(ctx: PassContext, g: Graph, pops: dict[str, _Population], objectives: tuple[float, float, float],
           rounds: int, rate_source: str) -> None:
    before, start, after = objectives
    m = g.meta["mapping"]
    ctx.note(NAME, f"{m['cores_used']} cores on {m['chips']} {m['hw']} chip(s) of {m['cores_per_chip']} cores",
             cores_used=m["cores_used"], chips=m["chips"])
    per_layer = {name: len(p.starts) for name, p in pops.items()}
    shown = ", ".join(f"{k} {n}" for k, n in list(per_layer.items())[:20])
    more = f", ... ({len(per_layer) - 20} more layers)" if len(per_layer) > 20 else ""
    ctx.note(NAME, f"cores per layer: {shown}{more}", layers=per_layer)
    rows = utilisation(g)
    worst = max(RESOURCES, key=lambda r: max(row[f"{r[0]}_use"] for row in rows))
    top = max(rows, key=lambda row: row[f"{worst[0]}_use"])
    mean = {key: float(np.mean([row[f"{key}_use"] for row in rows])) for key, _, _ in RESOURCES}
    least = min(RESOURCES, key=lambda r: mean[r[0]])
    means = ", ".join(f"{label} {mean[key]:.0%}" for key, _, label in RESOURCES)
    ctx.note(NAME, f"tightest resource: {worst[2]}, {top[f'{worst[0]}_use']:.0%} of a core at most "
                   f"(core {top['core']}, layer {top['population']!r}); least used: {least[2]}; mean use: {means}",
             resource=worst[1], peak_use=top[f"{worst[0]}_use"], least_used=least[1],
             mean_use={limit: mean[key] for key, limit, _ in RESOURCES})
    ctx.note(NAME, f"placement: traffic x hops {before:.6g} in snake order, {start:.6g} from the best starting "
                   f"order, {after:.6g} after {rounds} swap round(s) (rates: {rate_source})",
             objective_snake=before, objective_start=start, objective=after)


# ---------------------------------------------------------------------------------------------
# Helpers for backends and cost models.


def utilisation(graph: Graph) -> list[dict[str, Any]]:
    """Per-core rows of a mapped graph (``graph.meta["mapping"]["cores"]``, ordered by core):
    core, population, start, stop, neurons, synapses, memory_bits, fan_in, fan_out, plus each
    resource's fraction of the core's limit: neurons_use, memory_bits_use, fan_in_use, fan_out_use."""
    mapping = graph.meta.get("mapping")
    if not isinstance(mapping, dict) or "cores" not in mapping:
        raise MappingError("the graph is not mapped (run the map pass first)")
    limits = mapping["limits"]
    out = []
    for row in mapping["cores"]:
        row = dict(row)
        for key, limit, _ in RESOURCES:
            row[f"{key}_use"] = row[key] / limits[limit]
        out.append(row)
    return out


def block_traffic(graph: Graph, rates: dict[str, np.ndarray] | None = None,
                  default_rate: float = DEFAULT_RATE) -> tuple[list[dict[str, Any]], sp.csr_matrix]:
    """The blocks of a mapped graph and the spike traffic between them.

    Returns (blocks, traffic): blocks[k] = {"population", "start", "stop", "core"} in topological
    order; traffic[u, v] = messages per time step from block u to block v: the sum over the
    neurons of u with at least one synapse onto v of their rate (``rates[population]``, spikes per
    neuron and step, else ``default_rate``). Hops of a message: ``Mesh.hops`` between the cores.
    Host inputs are not blocks; their traffic is left out.
    """
    mapping = graph.meta.get("mapping")
    if not isinstance(mapping, dict):
        raise MappingError("the graph is not mapped (run the map pass first)")
    pops = all_projections(graph, 0)  # bits do not matter for traffic
    blocks = []
    for name, pop in pops.items():
        entry = graph.nodes[name].meta.get("mapping")
        if not entry:
            raise MappingError("population has no mapping (run the map pass first)", node=name)
        pop.starts = np.asarray([b[0] for b in entry["blocks"]], dtype=np.int64)
        pop.synapses = np.zeros(pop.size, np.int64)
        pop.bits = np.zeros(pop.size, np.int64)
        blocks += [{"population": name, "start": int(b[0]), "stop": int(b[1]), "core": int(b[2])} for b in entry["blocks"]]
    for pop in pops.values():
        for conn in pop.incoming:
            conn.starts = pop.starts
    ctx = PassContext(options={"rates": rates if rates is not None else "uniform", "default_rate": default_rate})
    r, _ = _rates(graph, ctx, pops)
    _, u, v, t = _block_stats(pops, r)
    n = len(blocks)
    return blocks, sp.csr_matrix((t, (u, v)), shape=(n, n))
