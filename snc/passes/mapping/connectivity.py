"""Connectivity of a spiking graph's projections, as the mapper counts it: synapses, input
axons and destination blocks per source neuron (see ``snc/passes/map_to_cores.py``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import scipy.sparse as sp

from snc.backends import linear_maps
from snc.ir import HOST, NEURON, READOUT, Graph
from snc.ir.projections import fan_in

# Elements of one temporary boolean slice of a dense weight matrix (bounds memory on big layers).
CHUNK_ELEMENTS = 1 << 22
# Operators that pass a Dense operator's output (or input) through unchanged, index for index.
_IDENTITY_OPS = ("Flatten", "Reshape", "Add")
# Sliding-window operators whose synaptic pattern is read straight from the kernel.
_WINDOW_OPS = ("Conv2d", "SumPool2d", "AvgPool2d")

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
    split_by: list | None = None  # per block: the limit that ended it (None: the population's end)

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


def _reorder(pattern: sp.csr_matrix, rows: np.ndarray | None, cols: np.ndarray | None) -> sp.csr_matrix:
    """The pattern with its rows and columns in mapping order (position p = flat index order[p])."""
    if rows is not None:
        pattern = pattern[rows]
    if cols is not None:
        pattern = sp.csr_matrix(pattern[:, cols])
        pattern.sort_indices()
    return pattern


def projections(graph: Graph, default_bits: int, weight_bits: Any = None,
                orders: dict[str, np.ndarray] | None = None) -> Iterator[_Population]:
    """Every mapped population (IF, LIF, Readout) with its projections, in *reverse* topological
    order: when a population comes, its incoming projections are built and its outgoing ones are
    complete (its consumers came before). Building lazily lets a caller refuse a late layer before
    composing the early ones. Input nodes appear as sources only. Weight bits of a projection:
    ``weight_bits`` if given, else its operators' fixed-point bits, else ``default_bits``.
    ``orders[population]``: the flat index of each position of that population's mapping order
    (``snc.ir.annotations.spatial_order``); its neurons, rows and columns come in that order."""
    orders = orders or {}
    shapes = graph.validate()
    order = graph.topological_order()
    position = {n: i for i, n in enumerate(order)}
    roles = {n: graph.nodes[n].role for n in order}
    outgoing: dict[str, list[Connectivity]] = {}
    for name in reversed(order):
        if roles[name] not in (NEURON, READOUT):
            continue
        flat_keep = getattr(graph.nodes[name], "keep", None)
        flat_keep = None if flat_keep is None else flat_keep.reshape(-1)
        perm = orders.get(name)
        pop = _Population(name, int(np.prod(shapes[name])),
                          flat_keep if flat_keep is None or perm is None else flat_keep[perm])
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
            if dense is not None and (perm is not None or orders.get(src) is not None):
                dense = dense[perm] if perm is not None else dense
                dense = dense[:, orders[src]] if orders.get(src) is not None else dense
            if dense is not None:
                conn = Connectivity(src, name, pop.size, n_src, bits, dense=dense)
            else:
                pattern = _synaptic_pattern(graph, shapes, src, name, nodes)
                if masked:  # pruned neurons have no synapses
                    pattern = _drop_removed(pattern, getattr(graph.nodes[src], "keep", None), flat_keep)
                pattern = _reorder(pattern, perm, orders.get(src))
                conn = Connectivity(src, name, pop.size, n_src, bits, pattern=pattern)
            pop.incoming.append(conn)
            outgoing.setdefault(src, []).append(conn)
        pop.outgoing = outgoing.pop(name, [])
        yield pop


def all_projections(graph: Graph, default_bits: int, weight_bits: Any = None,
                    orders: dict[str, np.ndarray] | None = None) -> dict[str, _Population]:
    """``projections`` as a dict in topological order."""
    pops = list(projections(graph, default_bits, weight_bits, orders))
    return {p.name: p for p in reversed(pops)}


