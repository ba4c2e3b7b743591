"""The spike-event graph: named nodes plus ordered, directed edges.

``Graph.nodes`` maps a name to a node dataclass; the edges live in a networkx DiGraph whose
edge attribute ``index`` orders the inputs of a node (Concat needs the order; every other node
sums its inputs, so for them the order only keeps printing stable).
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
from typing import Any, Iterable, Iterator

import networkx as nx
import numpy as np

from snc.errors import InvalidGraph, SncError

from .node import ANN, HOST, INPUT, LINEAR, NEURON, READOUT, Node, Shape, expect_arity


class Graph:
    """A directed acyclic graph of IR nodes.

    outputs: names of the nodes whose values are the network's outputs (Readouts after
             conversion; the logits node of an ANN graph).
    meta:    graph-level facts that passes attach (notes, the compile report, timesteps, ...).
    """

    def __init__(self, name: str = "graph") -> None:
        self.name = name
        self.nodes: dict[str, Node] = {}
        self.outputs: list[str] = []
        self.meta: dict[str, Any] = {}
        # A multigraph: the same source may feed a node twice (Add(x, x), Concat([x, x])).
        self._edges = nx.MultiDiGraph()
        self._version = 0  # bumped by every change of the edges (caches of structure read it)
        self._recurrent: tuple[int, bool] | None = None

    # --- construction -----------------------------------------------------------------------
    def add(self, name: str, node: Node, inputs: Iterable[str] = ()) -> str:
        """Add ``node`` under ``name`` fed by ``inputs`` (in order). Returns the name."""
        if not isinstance(name, str) or not name:
            raise InvalidGraph("node names must be non-empty strings", node=str(name))
        if name in self.nodes:
            raise InvalidGraph("a node of that name already exists", node=name)
        if not isinstance(node, Node):
            raise InvalidGraph(f"not an IR node: {type(node).__name__}", node=name)
        inputs = list(inputs)
        for src in inputs:  # check before storing anything: a refused add changes nothing
            if src not in self.nodes:
                raise InvalidGraph(f"input {src!r} does not exist", node=name)
        self.nodes[name] = node
        self._edges.add_node(name)
        self._changed()
        self.set_inputs(name, inputs)
        return name

    def unique_name(self, base: str) -> str:
        """``base`` if free, else ``base_1``, ``base_2`` ..."""
        if base not in self.nodes:
            return base
        i = 1
        while f"{base}_{i}" in self.nodes:
            i += 1
        return f"{base}_{i}"

    def set_inputs(self, name: str, inputs: Iterable[str]) -> None:
        """Replace the inputs of ``name`` by ``inputs`` (in order)."""
        self._require(name)
        inputs = list(inputs)
        for src in inputs:
            if src not in self.nodes:
                raise InvalidGraph(f"input {src!r} does not exist", node=name)
            if src == name:
                raise InvalidGraph("a node cannot feed itself", node=name)
        self._edges.remove_edges_from(list(self._edges.in_edges(name, keys=True)))
        for i, src in enumerate(inputs):
            self._edges.add_edge(src, name, index=i)
        self._changed()

    def replace(self, name: str, node: Node) -> None:
        """Put ``node`` in place of the node called ``name``, keeping its edges."""
        self._require(name)
        self.nodes[name] = node

    def remove(self, name: str) -> None:
        """Remove a node and all its edges."""
        self._require(name)
        del self.nodes[name]
        self._edges.remove_node(name)
        self._changed()
        self.outputs = [o for o in self.outputs if o != name]

    def bypass(self, name: str) -> None:
        """Remove a single-input node, wiring its input to each of its users in its place."""
        (src,) = self.inputs_of(name)
        for user in self.users_of(name):
            self.set_inputs(user, [src if x == name else x for x in self.inputs_of(user)])
        self.outputs = [src if o == name else o for o in self.outputs]
        self.remove(name)

    # --- queries ----------------------------------------------------------------------------
    def _require(self, name: str) -> None:
        if name not in self.nodes:
            raise InvalidGraph("no such node", node=name)

    def inputs_of(self, name: str) -> list[str]:
        self._require(name)
        preds = self._edges.in_edges(name, data="index")
        return [src for src, _, _ in sorted(preds, key=lambda e: e[2])]

    def input_count(self, name: str) -> int:
        return self._edges.in_degree(name)

    def users_of(self, name: str) -> list[str]:
        self._require(name)
        order = {n: i for i, n in enumerate(self.nodes)}
        return sorted(set(self._edges.successors(name)), key=order.__getitem__)

    def edges(self) -> list[tuple[str, str]]:
        return [(src, dst) for dst in self.nodes for src in self.inputs_of(dst)]

    def __contains__(self, name: object) -> bool:
        return name in self.nodes

    def __getitem__(self, name: str) -> Node:
        self._require(name)
        return self.nodes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.topological_order())

    def __len__(self) -> int:
        return len(self.nodes)

    def topological_order(self) -> list[str]:
        """Deterministic topological order (ties broken by insertion order). A recurrent graph
        (every cycle passes a ``Delay``) is ordered with the edges leaving its Delay nodes cut:
        what a node reads without delay comes before it. A cycle without a delay is refused,
        naming it."""
        order = {n: i for i, n in enumerate(self.nodes)}
        try:
            return list(nx.lexicographical_topological_sort(self._edges, key=order.__getitem__))
        except nx.NetworkXUnfeasible:
            pass
        cut = self._edges.copy()
        cut.remove_edges_from([e for e in list(cut.edges(keys=True)) if self.nodes[e[0]].kind == "Delay"])
        try:
            return list(nx.lexicographical_topological_sort(cut, key=order.__getitem__))
        except nx.NetworkXUnfeasible:
            cycle = [e[0] for e in nx.find_cycle(cut)]
            raise InvalidGraph(f"cycle without a delay: {' -> '.join(cycle + cycle[:1])} "
                               "(every cycle needs a Delay of at least one step)", node=cycle[0]) from None

    def _changed(self) -> None:
        self._version = getattr(self, "_version", 0) + 1

    @property
    def is_recurrent(self) -> bool:
        """Whether the graph has a cycle (each one through a Delay, see ``topological_order``).
        Remembered until the edges change (callers ask once per population)."""
        version = getattr(self, "_version", 0)
        cached = getattr(self, "_recurrent", None)
        if cached is None or cached[0] != version:
            cached = (version, not nx.is_directed_acyclic_graph(self._edges))
            self._recurrent = cached
        return cached[1]

    def nodes_with_role(self, *roles: str) -> list[str]:
        return [n for n in self.topological_order() if self.nodes[n].role in roles]

    @property
    def input_names(self) -> list[str]:
        return [n for n, node in self.nodes.items() if node.role == INPUT]

    @property
    def is_spiking(self) -> bool:
        """True for a converted graph: it reads out through a Readout and holds no ANN-only node
        (ReLU, MaxPool, BatchNorm, ScaleShift)."""
        roles = [node.role for node in self.nodes.values()]
        return READOUT in roles and ANN not in roles

    # --- shapes and validation --------------------------------------------------------------
    def infer_shapes(self) -> dict[str, Shape]:
        """Output shape of every node, checked edge by edge. In a recurrent graph a node may read
        a Delay that comes later in the order: populations declare their shape, so sweeps
        repeat until every shape is known and checked."""
        shapes: dict[str, Shape] = {}
        order = self.topological_order()
        if not self.is_recurrent:
            for name in order:
                node = self.nodes[name]
                ins = [shapes[src] for src in self.inputs_of(name)]
                expect_arity(node, name, ins)
                shapes[name] = tuple(int(d) for d in node.infer_shape(name, ins))
            return shapes
        declared = {n: tuple(int(d) for d in node.shape) for n, node in self.nodes.items()
                    if node.role in (NEURON, READOUT) and getattr(node, "shape", None) is not None}
        pending = list(order)
        while pending:
            left = []
            for name in pending:
                srcs = self.inputs_of(name)
                if any(s not in shapes and s not in declared for s in srcs):
                    left.append(name)
                    continue
                node = self.nodes[name]
                ins = [shapes.get(s, declared.get(s)) for s in srcs]
                expect_arity(node, name, ins)
                shapes[name] = tuple(int(d) for d in node.infer_shape(name, ins))
            if len(left) == len(pending):
                raise InvalidGraph("shapes around this cycle cannot be inferred (put a population on it)", node=left[0])
            pending = left
        return {n: shapes[n] for n in order}

    def validate(self) -> dict[str, Shape]:
        """Check every invariant; return the shapes. Raises a typed error naming the node."""
        if not self.input_names:
            raise InvalidGraph("the graph has no Input node")
        if not self.outputs:
            raise InvalidGraph("the graph declares no output")
        for out in self.outputs:
            if out not in self.nodes:
                raise InvalidGraph("declared output does not exist", node=out)
        for name, node in self.nodes.items():
            node.check(name)
        shapes = self.infer_shapes()
        reachable: set[str] = set()
        for src in self.input_names:
            reachable |= nx.descendants(self._edges, src) | {src}
        for name in self.nodes:
            if name not in reachable:
                raise InvalidGraph("node is not reachable from any input", node=name)
        for name, node in self.nodes.items():
            if node.role == HOST:
                self._check_host_operator(name)
        if self.is_spiking:
            for name, node in self.nodes.items():
                if node.role == LINEAR and getattr(node, "bias", None) is not None:
                    raise InvalidGraph("a synaptic operator of a spiking graph carries a bias (move it to the neurons)", node=name)
        return shapes

    def _check_host_operator(self, name: str) -> None:
        """A host operator reads only direct inputs, through linear (or affine) or host operators."""
        for up in nx.ancestors(self._edges, name):
            node = self.nodes[up]
            if node.role == INPUT and getattr(node, "encoding", "direct") != "direct":
                raise InvalidGraph(f"host operator reads the spike input {up!r}; only direct (analog) inputs may feed it", node=name)
            if node.role not in (INPUT, LINEAR, HOST) and node.kind not in ("BatchNorm", "ScaleShift"):
                raise InvalidGraph(f"host operator is downstream of {up!r} ({node.kind}); only direct inputs and linear "
                                   "operators may feed it", node=name)

    def fingerprint(self) -> str:
        """A digest of everything the graph holds: node names, kinds, inputs in order, every
        field (arrays by their bytes, dtype and shape; nested dataclasses and meta recursively),
        the outputs and the graph meta. Equal digests mean equal content, so results derived
        from one graph (a simulation plan) may be reused for another; any in-place change
        (a weight scaled by a pass) changes it. Costs one pass over the weights."""
        h = hashlib.blake2b(digest_size=20)
        for name, node in self.nodes.items():
            _digest(h, (name, node.kind, self.inputs_of(name)))
            _digest(h, node)
        _digest(h, (self.outputs, self.meta))
        return h.hexdigest()

    # --- copying and printing ---------------------------------------------------------------
    def copy(self) -> "Graph":
        """A deep copy: passes may change the copy freely."""
        return copy.deepcopy(self)

    def table(self) -> list[dict[str, Any]]:
        """One row per node for ``snc inspect``: name, kind, shape, neurons, synapses, params."""
        shapes = self.infer_shapes()
        rows = []
        for name in self.topological_order():
            node = self.nodes[name]
            shape = shapes[name]
            neurons = int(np.prod(shape)) if node.role in (NEURON, READOUT) else 0
            rows.append(
                {
                    "name": name,
                    "kind": node.kind,
                    "inputs": self.inputs_of(name),
                    "shape": list(shape),
                    "neurons": neurons,
                    "synapses": synapse_count(node),
                    "params": {k: _printable(v) for k, v in node.params().items()},
                }
            )
        return rows

    def __repr__(self) -> str:
        return f"Graph({self.name!r}, {len(self.nodes)} nodes, outputs={self.outputs})"


def _digest(h, value: Any) -> None:
    """Feed ``value`` into the hash ``h``, typed and delimited (see Graph.fingerprint)."""
    if isinstance(value, np.ndarray):
        h.update(f"A{value.dtype.str}{value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        h.update(f"D{type(value).__module__}.{type(value).__qualname__}(".encode())
        for f in dataclasses.fields(value):
            h.update(f.name.encode() + b"=")
            _digest(h, getattr(value, f.name))
        h.update(b")")
    elif isinstance(value, dict):
        h.update(b"{")
        for k in sorted(value, key=repr):
            _digest(h, k)
            h.update(b":")
            _digest(h, value[k])
        h.update(b"}")
    elif isinstance(value, (list, tuple)):
        h.update(b"[" if isinstance(value, list) else b"(")
        for v in value:
            _digest(h, v)
            h.update(b",")
        h.update(b"]")
    elif isinstance(value, np.generic):
        h.update(f"S{value.dtype.str}{value!r}".encode())
    else:
        h.update(f"{type(value).__name__}:{value!r};".encode())


def synapse_count(node: Node) -> int:
    """Non-zero synaptic weights an operator stores (0 for operators without weights)."""
    weight = getattr(node, "weight", None)
    if node.role == LINEAR and isinstance(weight, np.ndarray):
        return int(np.count_nonzero(weight))
    return 0


def dense_macs(node: Node, out_shape) -> int:
    """Multiply-accumulates of one dense evaluation of a weighted or pooling operator, per
    sample: Dense = its weight count, Conv2d = outputs x taps per output (padding included, as
    an ANN accelerator computes it), SumPool2d / AvgPool2d = outputs x window; 0 for the rest.
    The one MAC count the ANN baseline (convert) and the simulator's dense-path cost share."""
    out = int(np.prod(out_shape))
    if node.kind == "Dense":
        return int(node.weight.size)
    if node.kind == "Conv2d":
        return out * int(np.prod(node.weight.shape[1:]))
    if node.kind in ("SumPool2d", "AvgPool2d"):
        return out * node.kernel[0] * node.kernel[1]
    return 0


def _printable(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 4 else f"array{tuple(value.shape)}"
    if isinstance(value, tuple):
        return list(value)
    return value


def wrap_errors(file: str):
    """Context manager: attach ``file`` to any SncError raised inside."""
    class _Ctx:
        def __enter__(self):
            return self

        def __exit__(self, exc_type, exc, tb):
            if isinstance(exc, SncError):
                exc.with_file(file)
            return False

    return _Ctx()
