"""Lowering a spiking graph to its projections: what the simulator executes and the cycle model,
the Lava emitter and ``prune`` read (a kernel-layer module: passes may use it).

Populations (Input, IF, LIF, Readout) hold state; everything between two populations is linear.
For every population P and each population S that feeds it (possibly through several
operators: pooling, reshapes, concatenations, residual joins) the plan holds one *projection*:
the composed synaptic matrix M (n_P x n_S) plus the operator sub-graph that computes the same
map densely. The matrix gives non-zero fan-out per source neuron (synaptic operations) and the
columns the event-driven path gathers.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import scipy.sparse as sp

from snc.errors import InvalidGraph, UnsupportedOperator
import torch

from snc.ir import HOST, INPUT, NEURON, READOUT, Graph, Node, Shape
from snc.ir.graph import dense_macs
from snc.ir.projections import fan_in

from . import dense_ops, linear_maps

# A projection whose matrix is at least this dense is kept as a dense array (Dense layers).
DENSE_MATRIX_DENSITY = 0.2


class Projection:
    """One source population's synapses onto one target population.

    ``matrix`` (the composed synaptic matrix, n_target x n_source float64) is built on first use:
    the simulator needs only its structure (fan-out, synapse count, largest absolute row sum),
    which for the common projections (one convolution, pooling or gain) follows from the kernel
    and the geometry (``linear_maps.structure``)."""

    def __init__(
        self,
        source: str,
        target: str,
        nodes: list[str],
        matrix: sp.csr_matrix | Callable[[], sp.csr_matrix],
        static: bool,
        dense_macs: int,
        shape: tuple[int, int],
        structure: linear_maps.Structure | None = None,
        dense_weight: np.ndarray | None = None,
        weight_exp: int = 0,
        int_exact: str = "",
        host_pool: str | None = None,
        delay: int = 0,
    ) -> None:
        self.source = source
        self.target = target
        self.nodes = nodes  # linear operators on the paths source -> target (topological order)
        self._matrix = None if callable(matrix) else matrix
        self._build = matrix if callable(matrix) else None
        self.static = static  # the source is a direct (analog, constant) input
        self.dense_macs = dense_macs  # multiply-accumulates per sample-step when computed densely
        self.shape = shape  # (n_target, n_source)
        self._structure = structure
        self.dense_weight = dense_weight  # (n_target, n_source) float32 when the map is a plain matrix
        self.weight_exp = weight_exp  # fixed-point: shift of the summed input (floor)
        self.int_exact = int_exact  # "int8" when weights are integers in [-128, 127] (exact int8 kernel)
        # A HostMaxPool2d between a direct input and the target: ``nodes``, the matrix and
        # ``shape`` then describe the linear map to the pool's input (n_pre x n_source), and the
        # host takes the window maxima (``host_stage``) to get the target's current.
        self.host_pool = host_pool
        self.delay = delay  # steps of Delay operators on the path: the target sees spikes of t - delay

    @property
    def matrix(self) -> sp.csr_matrix:
        """The composed synaptic matrix (n_target, n_source) float64, CSR."""
        if self._matrix is None:
            self._matrix = self._build()
            self._build = None
        return self._matrix

    @property
    def structure(self) -> linear_maps.Structure:
        if self._structure is None:
            m = self.matrix
            fanout = np.diff(m.tocsc().indptr).astype(np.int64)
            row_abs = float(abs(m).sum(axis=1).max()) if m.nnz else 0.0
            self._structure = linear_maps.Structure(fanout, int(m.nnz), row_abs)
        return self._structure

    @property
    def fanout(self) -> np.ndarray:
        """Non-zero synapses leaving each source neuron, (n_source,) int64."""
        return self.structure.fanout

    @property
    def synapses(self) -> int:
        return self.structure.nnz

    @property
    def row_abs_max(self) -> float:
        """Largest sum of absolute weights into one target neuron."""
        return self.structure.row_abs_max

    def __repr__(self) -> str:
        return f"Projection({self.source!r} -> {self.target!r}, nodes={self.nodes}, shape={self.shape})"


@dataclass
class PopulationPlan:
    name: str
    node: Node
    shape: Shape
    projections: list[Projection] = field(default_factory=list)
    ops: list[str] = field(default_factory=list)  # union of operator nodes feeding this population

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def present(self) -> int:
        """Neurons that exist (pruned ones excluded)."""
        keep = getattr(self.node, "keep", None)
        return self.size if keep is None else int(np.count_nonzero(keep))

    @property
    def kind(self) -> str:
        return self.node.kind

    @property
    def dynamic(self) -> list[Projection]:
        return [p for p in self.projections if not p.static]

    @property
    def static(self) -> list[Projection]:
        return [p for p in self.projections if p.static]


@dataclass
class Plan:
    graph: Graph
    shapes: dict[str, Shape]
    populations: list[PopulationPlan]  # topological order, inputs first
    by_name: dict[str, PopulationPlan]
    outgoing: dict[str, list[Projection]]
    fanout: dict[str, np.ndarray]  # total non-zero fan-out per neuron of each population
    source: Graph | None = None  # the graph it was built from (``graph`` is its integer form in fixed point)
    memo: dict = field(default_factory=dict, repr=False)  # per-node facts consumers derive once (inputs, kernels)

    def inputs_of(self, name: str) -> list[str]:
        """``graph.inputs_of(name)``, looked up once per plan (the simulator asks every chunk)."""
        key = ("inputs", name)
        if key not in self.memo:
            self.memo[key] = self.graph.inputs_of(name)
        return self.memo[key]

    @property
    def readouts(self) -> list[PopulationPlan]:
        return [p for p in self.populations if p.node.role == READOUT]


def _dense_macs(graph: Graph, shapes: dict[str, Shape], nodes: list[str]) -> int:
    """Dense-path work of a projection's operators: their MACs (ir.graph.dense_macs), and one
    operation per output for the operators without any (Add, Flatten, ...)."""
    macs = 0
    for name in nodes:
        node = graph.nodes[name]
        macs += dense_macs(node, shapes[name]) or int(np.prod(shapes[name]))
    return macs


def _int8_exact(m: np.ndarray) -> bool:
    return bool(np.all(m == np.round(m)) and m.min(initial=0) >= -128 and m.max(initial=0) <= 127)


_PLANS: "OrderedDict[tuple[str, bool], Plan]" = OrderedDict()  # the last few plans, by graph content
_PLANS_KEPT = 4


def build_plan(graph: Graph, *, fixed: bool = False) -> Plan:
    """Lower a validated spiking graph. ``fixed`` selects the integer weights (``node.fixed``).

    Plans are kept for the last few graphs by content (Graph.fingerprint): simulating the same
    network again (a benchmark's repeats, a sweep over T or data) reuses it. A kept plan is
    reused only while its own graph still has that content (it may since have been changed in
    place); otherwise it is rebuilt."""
    key = (graph.fingerprint(), fixed)
    plan = _PLANS.get(key)
    # The kept plan's own graph must still have that content: it may have been changed in place
    # since (when it is ``graph`` itself, the digest just taken says so).
    if plan is not None and (plan.source is graph or plan.source.fingerprint() == key[0]):
        _PLANS.move_to_end(key)
        return plan
    plan = _build_plan(graph, fixed=fixed)
    plan.source = graph
    _PLANS[key] = plan
    while len(_PLANS) > _PLANS_KEPT:
        _PLANS.popitem(last=False)
    return plan


def _build_plan(graph: Graph, *, fixed: bool = False) -> Plan:
    shapes = graph.validate()
    if not graph.is_spiking:
        ann = [n for n, node in graph.nodes.items() if node.role == "ann"]
        raise InvalidGraph(f"the graph still holds ANN layers {ann[:5]}; convert it to a spiking graph first", node=ann[0])
    exps: dict[str, int] = {}
    if fixed:
        graph, exps = integer_graph(graph)
    order = graph.topological_order()
    pops = [n for n in order if graph.nodes[n].role in (INPUT, NEURON, READOUT)]
    plans: list[PopulationPlan] = []
    by_name: dict[str, PopulationPlan] = {}
    outgoing: dict[str, list[Projection]] = {p: [] for p in pops}
    position = {n: i for i, n in enumerate(order)}
    for name in pops:
        node = graph.nodes[name]
        plan = PopulationPlan(name, node, shapes[name])
        plans.append(plan)
        by_name[name] = plan
        if node.role == INPUT:
            continue
        fan = fan_in(graph, name, position)
        plan.ops = list(fan.ops)
        if node.role == READOUT and node.mode == "spike_count":
            if fan.ops or len(fan.sources) != 1 or graph.nodes[fan.sources[0]].role != NEURON:
                raise InvalidGraph("a spike_count Readout must be fed directly by one spiking population", node=name)
        for edge in fan.incoming:
            src, nodes = edge.source, list(edge.ops)
            delay = _path_delay(graph, src, name, nodes)
            src_node = graph.nodes[src]
            static = src_node.role == INPUT and src_node.encoding == "direct"
            n_t, n_s = int(np.prod(shapes[name])), int(np.prod(shapes[src]))
            host_pool = _host_pool(graph, name, nodes, static)
            into = name
            if host_pool is not None:
                nodes = nodes[:-1]
                into = host_pool
                n_t = int(np.prod(shapes[graph.inputs_of(host_pool)[0]]))
            build = _matrix_builder(graph, shapes, src, into, nodes, src_node, node if host_pool is None else None)
            # Structure from the kernel when possible (no matrix), else from the matrix.
            struct = None
            if getattr(src_node, "keep", None) is None and (host_pool is not None or getattr(node, "keep", None) is None):
                struct = linear_maps.structure(graph, shapes, src, into, nodes)
            # Structural integer operators (sum pooling, max-pool selections) carry exponent 0;
            # the one quantised operator on the path carries the projection's exponent.
            used = {exps[o] for o in nodes if o in exps} - {0}
            if len(used) > 1:
                raise UnsupportedOperator(f"projection {src} -> {name} mixes weight exponents {sorted(used)}", node=name)
            exp = used.pop() if used else 0
            if delay and static:
                raise UnsupportedOperator("a delay on a direct (analog) input's projection is not supported", node=name)
            proj = Projection(
                source=src, target=name, nodes=nodes, matrix=build, static=static,
                dense_macs=_dense_macs(graph, shapes, nodes) if nodes else n_t,
                shape=(n_t, n_s), structure=struct, weight_exp=exp, host_pool=host_pool, delay=delay,
            )
            if struct is None:
                m = proj.matrix
                # (a single convolution, pooling or gain of an integer graph is integral by construction)
                if fixed and m.nnz and not np.all(m.data == np.round(m.data)):
                    raise UnsupportedOperator(f"projection {src} -> {name} does not compose to integer weights", node=name)
            density = proj.synapses / max(1, n_t * n_s)
            only_matrix_ops = all(graph.nodes[o].kind in ("Dense", "Flatten", "Reshape", "Scale", "Transpose") for o in nodes)
            if density >= DENSE_MATRIX_DENSITY or only_matrix_ops and n_t * n_s <= 64_000_000:
                proj.dense_weight = np.asarray(proj.matrix.todense(), dtype=np.float32)
                if _int8_exact(proj.dense_weight):
                    proj.int_exact = "int8"
            plan.projections.append(proj)
            outgoing[src].append(proj)
    fanout = {}
    for name in pops:
        total = np.zeros(int(np.prod(shapes[name])), dtype=np.int64)
        for proj in outgoing[name]:
            total += proj.fanout
        fanout[name] = total
    return Plan(graph, shapes, plans, by_name, outgoing, fanout)


def _path_delay(graph: Graph, source: str, target: str, nodes: list[str]) -> int:
    """Total ``Delay`` steps from ``source`` to ``target``; every path must agree (a projection
    has one delay)."""
    dist = {source: 0}
    for op in nodes + [target]:
        ds = {dist[i] for i in graph.inputs_of(op) if i in dist}
        if len(ds) > 1:
            raise UnsupportedOperator(f"paths from {source!r} arrive with different delays {sorted(ds)}; "
                                      "split them into populations of their own", node=op)
        node = graph.nodes[op]
        dist[op] = ds.pop() + (int(node.steps) if node.kind == "Delay" else 0)
    return dist[target]


def _host_pool(graph: Graph, target: str, nodes: list[str], static: bool) -> str | None:
    """The HostMaxPool2d of a projection (the last operator, feeding ``target`` alone), else None."""
    host = [o for o in nodes if graph.nodes[o].role == HOST]
    if not host:
        return None
    pool = host[-1]
    if not static or len(host) > 1 or nodes[-1] != pool or graph.inputs_of(target) != [pool]:
        raise UnsupportedOperator("a host operator must be the last step between a direct input and the one "
                                  "population it feeds", node=pool)
    return pool


def host_stage(plan: "Plan", proj: Projection, pre: torch.Tensor) -> torch.Tensor:
    """The host's step after a projection's linear part: (R, n_pre) -> (R, n_target) window
    maxima of ``proj.host_pool`` (exact in any dtype: a maximum rounds nothing)."""
    if proj.host_pool is None:
        return pre
    graph = plan.graph
    (inp,) = graph.inputs_of(proj.host_pool)
    rows = pre.shape[0]
    out = dense_ops.apply(graph.nodes[proj.host_pool], [pre.reshape((rows,) + tuple(plan.shapes[inp]))])
    return out.reshape(rows, -1)


def _matrix_builder(graph, shapes, src, name, nodes, src_node, node) -> Callable[[], sp.csr_matrix]:
    def build() -> sp.csr_matrix:
        m = linear_maps.compose(graph, shapes, src, name, nodes)
        return _without_removed(m, src_node, node)

    return build


def _without_removed(m: sp.csr_matrix, source: Node, target: Node | None) -> sp.csr_matrix:
    """Drop the synapses of pruned neurons (``keep`` masks): rows of removed targets, columns of
    removed sources."""
    kt = getattr(target, "keep", None)
    ks = getattr(source, "keep", None)
    if kt is None and ks is None:
        return m
    if kt is not None:
        m = sp.diags(kt.reshape(-1).astype(np.float64)) @ m
    if ks is not None:
        m = m @ sp.diags(ks.reshape(-1).astype(np.float64))
    m = m.tocsr()
    m.eliminate_zeros()
    return m


def integer_graph(graph: Graph) -> tuple[Graph, dict[str, int]]:
    """A copy of ``graph`` whose weights are the fixed-point mantissas, and each weighted
    operator's exponent. Fractional operators without a fixed form are refused."""
    out = graph.copy()
    exps: dict[str, int] = {}
    for name, node in out.nodes.items():
        if node.kind in ("Dense", "Conv2d"):
            if node.fixed is None:
                raise UnsupportedOperator("no fixed-point weights on this operator; run the quantize pass first", node=name)
            out.replace(name, node.replace(weight=node.fixed.weight.astype(np.float32)))
            exps[name] = int(node.fixed.weight_exp)
        elif node.kind == "AvgPool2d":
            raise UnsupportedOperator("average pooling has fractional weights; run the quantize pass first", node=name)
        elif node.kind == "Scale":
            fx = getattr(node, "fixed", None)
            if fx is not None:
                out.replace(name, node.replace(scale=fx.weight.astype(np.float32)))
                exps[name] = int(fx.weight_exp)
            elif not np.all(node.scale == np.round(node.scale)):
                raise UnsupportedOperator("a fractional gain has no fixed-point form; run the quantize pass first", node=name)
        elif node.kind == "SumPool2d" and node.fixed is not None:
            exps[name] = int(node.fixed.weight_exp)
        if node.role in (NEURON, READOUT) and node.fixed is None:
            raise UnsupportedOperator("no fixed-point neuron parameters; run the quantize pass first", node=name)
    return out, exps
