"""Every linear IR operator as an explicit sparse matrix, and their composition.

``matrix(node, in_shapes, k)`` is the (n_out x n_in_k) matrix that maps the row-major flattened
k-th input of ``node`` to its row-major flattened output. Composing them along the operators
between two populations gives the synaptic matrix of that projection: the event simulator
gathers its columns for the neurons that spiked, counts non-zero fan-out for synaptic
operations, and mappers and emitters read connectivity from it.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import scipy.sparse as sp

from snc.errors import UnsupportedOperator
from snc.ir import Node, Shape


def _coo(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, n_out: int, n_in: int) -> sp.csr_matrix:
    keep = vals != 0
    return sp.csr_matrix(
        (vals[keep].astype(np.float64), (rows[keep], cols[keep])), shape=(n_out, n_in)
    )


def _window_matrix(
    in_shape: Shape,
    out_shape: Shape,
    kernel: np.ndarray,  # (C_out, C_in_g, kh, kw)
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
    dilation: tuple[int, int],
    groups: int,
) -> sp.csr_matrix:
    c_in, h, w = in_shape
    c_out, ho, wo = out_shape
    c_in_g, kh, kw = kernel.shape[1:]
    per_group_out = c_out // groups
    ii, jj = np.meshgrid(np.arange(ho), np.arange(wo), indexing="ij")
    ii = ii.ravel()
    jj = jj.ravel()
    # (C_out, C_in_g) pairs and the input channel each reads.
    o, c = np.meshgrid(np.arange(c_out), np.arange(c_in_g), indexing="ij")
    o = o.ravel()
    cin = (o // per_group_out) * c_in_g + c.ravel()
    rows_all, cols_all, vals_all = [], [], []
    # One kernel position at a time, vectorised over channel pairs and output positions.
    for m in range(kh):
        for n in range(kw):
            vals = kernel[:, :, m, n].ravel()
            keep = vals != 0
            if not keep.any():
                continue
            y = ii * stride[0] + m * dilation[0] - padding[0]
            x = jj * stride[1] + n * dilation[1] - padding[1]
            ok = (y >= 0) & (y < h) & (x >= 0) & (x < w)
            out_pos = ii[ok] * wo + jj[ok]
            in_pos = y[ok] * w + x[ok]
            ok_o, ok_c, ok_v = o[keep], cin[keep], vals[keep]
            rows_all.append((ok_o[:, None] * (ho * wo) + out_pos[None, :]).ravel())
            cols_all.append((ok_c[:, None] * (h * w) + in_pos[None, :]).ravel())
            vals_all.append(np.repeat(ok_v.astype(np.float64), out_pos.size))
    if not rows_all:
        return sp.csr_matrix((c_out * ho * wo, c_in * h * w))
    m_ = sp.csr_matrix(
        (np.concatenate(vals_all), (np.concatenate(rows_all), np.concatenate(cols_all))),
        shape=(c_out * ho * wo, c_in * h * w),
    )
    m_.sum_duplicates()
    return m_


def _dense(node, in_shapes, out_shape, k):
    return sp.csr_matrix(node.weight.astype(np.float64))


def _conv2d(node, in_shapes, out_shape, k):
    return _window_matrix(in_shapes[0], out_shape, node.weight.astype(np.float64), node.stride, node.padding, node.dilation, node.groups)


def _pool_kernel(channels: int, kernel: tuple[int, int], value: float) -> np.ndarray:
    ker = np.zeros((channels, 1) + tuple(kernel))
    ker[:] = value
    return ker


def _sum_pool(node, in_shapes, out_shape, k):
    c = in_shapes[0][0]
    return _window_matrix(in_shapes[0], out_shape, _pool_kernel(c, node.kernel, 1.0), node.stride, node.padding, (1, 1), c)


def _avg_pool(node, in_shapes, out_shape, k):
    total = _sum_pool(node, in_shapes, out_shape, k)
    if node.count_include_pad or not any(node.padding):
        return total * (1.0 / (node.kernel[0] * node.kernel[1]))
    counts = np.asarray((total != 0).sum(axis=1)).ravel()  # inside-window positions per output
    # Every window holds at least one real input (guaranteed by the output-size formula).
    return sp.diags(1.0 / np.maximum(counts, 1)) @ total


def _identity(node, in_shapes, out_shape, k):
    return sp.identity(int(np.prod(in_shapes[k])), format="csr")


def _transpose(node, in_shapes, out_shape, k):
    n = int(np.prod(in_shapes[0]))
    src = np.arange(n).reshape(in_shapes[0]).transpose(node.perm).ravel()
    return sp.csr_matrix((np.ones(n), (np.arange(n), src)), shape=(n, n))


def _concat(node, in_shapes, out_shape, k):
    n_out = int(np.prod(out_shape))
    out_index = np.arange(n_out).reshape(out_shape)
    start = sum(s[node.axis] for s in in_shapes[:k])
    sl = [slice(None)] * len(out_shape)
    sl[node.axis] = slice(start, start + in_shapes[k][node.axis])
    rows = out_index[tuple(sl)].ravel()
    n_in = rows.size
    return sp.csr_matrix((np.ones(n_in), (rows, np.arange(n_in))), shape=(n_out, n_in))


def _scale(node, in_shapes, out_shape, k):
    g = np.broadcast_to(node.scale.astype(np.float64), in_shapes[0]).ravel()
    return sp.diags(g, format="csr")


MATRICES: dict[str, Callable] = {
    "Dense": _dense,
    "Conv2d": _conv2d,
    "SumPool2d": _sum_pool,
    "AvgPool2d": _avg_pool,
    "Flatten": _identity,
    "Delay": _identity,  # a time shift: the same synapses
    "Reshape": _identity,
    "Transpose": _transpose,
    "Concat": _concat,
    "Add": _identity,
    "Scale": _scale,
}


def matrix(node: Node, in_shapes: list[Shape], out_shape: Shape, k: int = 0, name: str | None = None) -> sp.csr_matrix:
    """Sparse (n_out x n_in_k) matrix of a linear node for its k-th input (float64)."""
    fn = MATRICES.get(node.kind)
    if fn is None:
        raise UnsupportedOperator(f"{node.kind} is not a linear synaptic operator", node=name)
    return fn(node, in_shapes, out_shape, k)


def compose(graph, shapes: dict[str, Shape], source: str, target: str, nodes: list[str]) -> sp.csr_matrix:
    """Matrix of the map from ``source``'s output to ``target``'s summed input, through the linear
    ``nodes`` (topologically ordered) that lie on paths between them. Other inputs of Add/Concat
    nodes on the way contribute nothing (they belong to other projections)."""
    n_src = int(np.prod(shapes[source]))
    values: dict[str, sp.csr_matrix] = {source: sp.identity(n_src, format="csr")}
    for name in nodes:
        node = graph.nodes[name]
        ins = graph.inputs_of(name)
        in_shapes = [shapes[i] for i in ins]
        acc = None
        for k, src in enumerate(ins):
            if src in values:
                term = matrix(node, in_shapes, shapes[name], k, name) @ values[src]
                acc = term if acc is None else acc + term
        if acc is not None:
            values[name] = acc.tocsr()
    acc = None
    for src in graph.inputs_of(target):
        if src in values:
            acc = values[src] if acc is None else acc + values[src]
    if acc is None:
        return sp.csr_matrix((int(np.prod(shapes[target])), n_src))
    acc = acc.tocsr()
    acc.eliminate_zeros()
    return acc


# --- Structure without the matrix ---------------------------------------------------------------
# The simulator needs, per projection, the non-zero fan-out of every source neuron, the number of
# synapses and (fixed point) the largest absolute row sum; for the common projections (one
# convolution, pooling or gain, possibly behind an Add or a reshape) these follow from the kernel
# and the geometry alone, without building the (often large) composed matrix.


class Structure:
    """Exact facts about a projection's composed matrix M (n_target x n_source)."""

    def __init__(self, fanout: np.ndarray, nnz: int, row_abs_max: float) -> None:
        self.fanout = fanout  # non-zero entries per column of M, int64 (n_source,)
        self.nnz = nnz  # non-zero entries of M
        self.row_abs_max = row_abs_max  # max_i sum_j |M_ij| (float64)


def _taps_valid(n_in: int, n_out: int, k: int, stride: int, dilation: int, pad: int) -> np.ndarray:
    """(k, n_out, n_in) bool: output position o reads input position i through kernel tap m."""
    m = np.arange(k)[:, None, None]
    o = np.arange(n_out)[None, :, None]
    i = np.arange(n_in)[None, None, :]
    return o * stride + m * dilation - pad == i


def window_structure(in_shape: Shape, out_shape: Shape, kernel: np.ndarray, stride, padding, dilation, groups: int) -> Structure:
    """The Structure of ``_window_matrix`` with the same arguments, computed from the kernel."""
    c_in, h, w = in_shape
    c_out, ho, wo = out_shape
    c_in_g, kh, kw = kernel.shape[1:]
    per_group_out = c_out // groups
    vy = _taps_valid(h, ho, kh, stride[0], dilation[0], padding[0]).astype(np.int64)  # (kh, ho, h)
    vx = _taps_valid(w, wo, kw, stride[1], dilation[1], padding[1]).astype(np.int64)  # (kw, wo, w)
    nz = (kernel != 0).astype(np.int64)  # (c_out, c_in_g, kh, kw)
    # Non-zero taps per input channel: summed over the output channels of its group.
    per_in = nz.reshape(groups, per_group_out, c_in_g, kh, kw).sum(axis=1).reshape(c_in, kh, kw)
    hits_y = vy.sum(axis=1)  # (kh, h): outputs reading input row y through tap m (0 or 1)
    hits_x = vx.sum(axis=1)  # (kw, w)
    fanout = np.einsum("cmn,my,nx->cyx", per_in, hits_y, hits_x).reshape(-1)
    absk = np.abs(kernel.astype(np.float64)).sum(axis=1)  # (c_out, kh, kw)
    rows_y = vy.sum(axis=2).astype(np.float64)  # (kh, ho): tap m of output row i is inside
    rows_x = vx.sum(axis=2).astype(np.float64)
    row_abs = np.einsum("omn,mi,nj->oij", absk, rows_y, rows_x)
    return Structure(fanout.astype(np.int64), int(fanout.sum()), float(row_abs.max(initial=0.0)))


_PASS_THROUGH = ("Add", "Flatten", "Reshape", "Delay")


def structure(graph, shapes: dict[str, Shape], source: str, target: str, nodes: list[str]) -> Structure | None:
    """The Structure of ``compose(graph, shapes, source, target, nodes)`` when the projection is a
    single chain through at most one Conv2d, SumPool2d or Scale (other links: Add, Flatten,
    Reshape); None otherwise (then read it from the matrix)."""
    prev = source
    weighted = None
    for name in nodes:
        node = graph.nodes[name]
        ins = graph.inputs_of(name)
        reached = [i for i in ins if i == prev or i == source or i in nodes]
        if reached != [prev]:
            return None
        if node.kind in _PASS_THROUGH:
            pass
        elif node.kind in ("Conv2d", "SumPool2d", "Scale") and weighted is None:
            weighted = name
        else:
            return None
        prev = name
    tins = graph.inputs_of(target)
    if [i for i in tins if i == prev or i == source or i in nodes] != [prev]:
        return None
    n_src = int(np.prod(shapes[source]))
    if weighted is None:
        if int(np.prod(shapes[target])) != n_src:
            return None
        return Structure(np.ones(n_src, dtype=np.int64), n_src, 1.0 if n_src else 0.0)
    node = graph.nodes[weighted]
    (inp,) = graph.inputs_of(weighted)
    in_shape, out_shape = shapes[inp], shapes[weighted]
    if node.kind == "Scale":
        g = np.broadcast_to(node.scale.astype(np.float64), in_shape).ravel()
        nzg = g != 0
        return Structure(nzg.astype(np.int64), int(nzg.sum()), float(np.abs(g).max(initial=0.0)))
    if len(in_shape) != 3 or len(out_shape) != 3:
        return None
    if node.kind == "Conv2d":
        return window_structure(in_shape, out_shape, node.weight, node.stride, node.padding, node.dilation, node.groups)
    c = in_shape[0]
    return window_structure(in_shape, out_shape, _pool_kernel(c, node.kernel, 1.0), node.stride, node.padding, (1, 1), c)
