"""NIR out: a compiled spiking graph as a NIR graph (``.nir``, HDF5 through the ``nir`` package).

    export_nir(graph, "net.nir", dt=1e-4)         # snc export ARTIFACT --to nir -o net.nir [--dt S]

Every snc step becomes ``dt`` seconds of NIR's continuous time, written so that NIR's forward-Euler
reading at that dt (snc.frontends.nir, snnTorch's import) is snc's step:

  ==========================  ==============================================================
  snc                         NIR
  ==========================  ==============================================================
  Input                       Input (shape)
  Dense / Conv2d              Linear / Conv2d (symmetric padding); the bias of an IF or of a
                              perfect-integrator readout makes its single feeding Dense an
                              Affine (or its convolution's bias)
  SumPool2d, AvgPool2d        SumPool2d, AvgPool2d (symmetric padding)
  Flatten, Scale              Flatten (start_dim 0), Scale
  Add                         no node: its inputs' edges meet at its consumers (NIR sums fan-in)
  IF                          IF, r = 1/dt, v_reset = 0
  LIF (decay_voltage dv)      LIF, tau = dt/dv, r = tau/dt, v_leak = bias/dv
  LIF with a current decay    CubaLIF, tau_syn = dt/dc, w_in = tau_syn/dt, tau_mem, r, v_leak as LIF
  Readout, spike count        Output after the population
  Readout, leaky membrane     LI (tau = dt/dv, r = tau/dt, v_leak = bias/dv) + Output
  Readout, perfect membrane   I (r = 1/dt) + Output; snc's output is that membrane / T
  ==========================  ==============================================================

What NIR cannot say is kept exactly under ``metadata``: each node's ``snc`` entry (its kind and
the semantics NIR lacks: subtractive reset, refractory steps, fixed point), the graph's ``dt``
and, as ``snc_artifact``, the whole graph (the .snir bytes), from which snc's NIR reader rebuilds
the identical graph when the NIR nodes still agree with it. A subtractive reset is written as
NIR's reset to 0 (the closest a plain NIR consumer simulates) and listed in the export report.

Refused with the node's name: Delay, Reshape, Transpose, Concat, max pools, declared neuron
models (CubaLIF, ATRLIF), biases NIR cannot place.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from snc.errors import InvalidGraph, UnsupportedOperator
from snc.ir import Graph
from snc.ir.artifact import to_bytes

DEFAULT_DT = 1e-4


def export_nir(graph: Graph, path: str | os.PathLike, *, dt: float = DEFAULT_DT, timesteps: int | None = None) -> Path:
    """Write ``graph`` (a compiled spiking graph) to ``path`` as NIR; returns the path. The
    export report (what NIR cannot carry) is in the file's graph metadata ``snc_report`` and
    returned by ``to_nir``."""
    import nir

    g, report = to_nir(graph, dt=dt)
    g.metadata["snc_report"] = "\n".join(report)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".nir", dir=str(path.parent))
    os.close(fd)
    try:
        nir.write(tmp, g)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def to_nir(graph: Graph, *, dt: float = DEFAULT_DT):
    """(nir.NIRGraph, report lines)."""
    import nir

    from snc.ir.sequence import is_sequence_model

    if is_sequence_model(graph):
        raise UnsupportedOperator("a language model (token input) has no NIR form")
    if not graph.is_spiking:
        raise InvalidGraph("NIR export takes a compiled spiking graph (run `snc compile` first)")
    if not dt > 0:
        raise InvalidGraph(f"dt must be > 0, got {dt}")
    shapes = graph.validate()
    order = graph.topological_order()
    nodes: dict[str, object] = {}
    edges: list[tuple[str, str]] = []
    alias: dict[str, list[str]] = {}  # snc node -> the NIR nodes whose outputs carry its value
    report: list[str] = []
    affine_bias: dict[str, np.ndarray] = {}  # Dense/Conv name -> bias it must carry (for an IF)

    def srcs(name: str) -> list[str]:
        out = []
        for s in graph.inputs_of(name):
            out += alias[s]
        return out

    def meta(node, **extra) -> dict:
        info = {"kind": node.kind}
        info.update(extra)
        fixed = getattr(node, "fixed", None)
        if fixed is not None:
            info["fixed_point"] = True
        return {"snc": json.dumps(info, sort_keys=True)}

    # IF biases go into the one Dense/Conv2d feeding the population (gain 1: r = 1/dt)
    for name in order:
        node = graph.nodes[name]
        integrator = node.kind == "IF" or (node.kind == "Readout" and node.mode == "membrane" and not node.leaky)
        if integrator and node.bias is not None and np.any(node.bias != 0):
            ins = graph.inputs_of(name)
            up = graph.nodes[ins[0]] if len(ins) == 1 else None
            if up is None or up.kind not in ("Dense", "Conv2d") or len(graph.users_of(ins[0])) != 1:
                raise UnsupportedOperator(f"a bias of an {node.kind} needs one Dense or Conv2d feeding only it (NIR's "
                                          "IF and I have no bias)", node=name)
            b = np.broadcast_to(node.bias, node.shape)
            if up.kind == "Conv2d":
                per = b.reshape(b.shape[0], -1)
                if not np.all(per == per[:, :1]):
                    raise UnsupportedOperator("an IF's bias that varies over positions (a convolution's bias is per channel)",
                                              node=name)
                b = per[:, 0]
            affine_bias[ins[0]] = np.asarray(b, np.float32)

    for name in order:
        node = graph.nodes[name]
        k = node.kind
        shape = shapes[name]
        ins = srcs(name) if k != "Input" else []
        if k == "Input":
            nodes[name] = nir.Input(input_type=np.array(shape), metadata=meta(node, encoding=node.encoding))
        elif k == "Add":
            alias[name] = ins
            continue
        elif k == "Dense":
            w = np.asarray(node.weight, np.float32)
            if name in affine_bias:
                nodes[name] = nir.Affine(weight=w, bias=affine_bias[name], metadata=meta(node))
            else:
                nodes[name] = nir.Linear(weight=w, metadata=meta(node))
        elif k == "Conv2d":
            top, left, bottom, right = node.padding
            if (top, left) != (bottom, right):
                raise UnsupportedOperator(f"asymmetric padding {node.padding} (NIR's Conv2d pads both sides alike)", node=name)
            in_shape = shapes[graph.inputs_of(name)[0]]
            bias = affine_bias.get(name, np.zeros(node.weight.shape[0], np.float32))
            nodes[name] = nir.Conv2d(input_shape=tuple(in_shape[1:]), weight=np.asarray(node.weight, np.float32),
                                     stride=tuple(node.stride), padding=(top, left), dilation=tuple(node.dilation),
                                     groups=int(node.groups), bias=bias, metadata=meta(node))
        elif k in ("SumPool2d", "AvgPool2d"):
            top, left, bottom, right = node.padding
            if (top, left) != (bottom, right) or (k == "AvgPool2d" and top + left and not node.count_include_pad):
                raise UnsupportedOperator(f"{k} padding {node.padding} has no NIR form", node=name)
            cls = nir.SumPool2d if k == "SumPool2d" else nir.AvgPool2d
            nodes[name] = cls(kernel_size=np.array(node.kernel), stride=np.array(node.stride), padding=np.array((top, left)),
                              metadata=meta(node))
        elif k == "Flatten":
            nodes[name] = nir.Flatten(input_type={"input": np.array(shapes[graph.inputs_of(name)[0]])}, start_dim=0, end_dim=-1,
                                      metadata=meta(node))
        elif k == "Scale":
            nodes[name] = nir.Scale(scale=np.broadcast_to(np.asarray(node.scale, np.float32), shape).copy(), metadata=meta(node))
        elif k in ("IF", "LIF"):
            nodes[name] = _population(nir, node, name, shape, dt, meta, report)
        elif k == "Readout":
            nodes[name], extra = _readout(nir, node, name, shape, dt, meta)
            report += extra
            if nodes[name] is None:  # spike count: the Output follows the population itself
                del nodes[name]
                out = f"{name}"
                nodes[out] = nir.Output(output_type=np.array(shape), metadata=meta(node, mode=node.mode))
                edges += [(s, out) for s in ins]
                alias[name] = [out]
                continue
            out = f"{name}.output"
            nodes[out] = nir.Output(output_type=np.array(shape))
            edges.append((name, out))
        else:
            raise UnsupportedOperator(f"{k} has no NIR form (NIR exports IF, LIF, CubaLIF-like LIF, readouts, Dense, "
                                      "Conv2d, pools, Flatten, Scale and sums)", node=name)
        edges += [(s, name) for s in ins]
        alias[name] = [name]
    g = nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": float(dt), "snc_artifact": np.frombuffer(to_bytes(graph), np.uint8)})
    return g, report


def _population(nir, node, name, shape, dt, meta, report):
    th = np.broadcast_to(np.asarray(node.threshold, np.float32), shape).copy()
    extra = {"reset": node.reset, "refractory": int(node.refractory)}
    if node.reset == "subtract":
        report.append(f"{name}: subtractive reset written as NIR's reset to 0 (metadata snc.reset = 'subtract')")
    if node.refractory:
        report.append(f"{name}: a refractory period of {node.refractory} step(s) NIR cannot carry (metadata snc.refractory)")
    if getattr(node, "keep", None) is not None and not np.all(node.keep):
        report.append(f"{name}: pruned neurons kept as silent neurons (their thresholds stay)")
    zeros = np.zeros(shape, np.float32)
    dv = float(node.decay_voltage) if node.kind == "LIF" else 0.0
    dc = float(node.decay_current) if node.kind == "LIF" else 1.0
    if dv == 0.0 and dc == 1.0:
        return nir.IF(r=np.full(shape, 1.0 / dt, np.float32), v_threshold=th, v_reset=zeros, metadata=meta(node, **extra))
    if dv == 0.0:
        raise UnsupportedOperator("a current decay without a voltage leak has no NIR neuron", node=name)
    tau = dt / dv
    bias = zeros if node.bias is None else np.broadcast_to(node.bias, shape).astype(np.float32)
    v_leak = (bias / dv).astype(np.float32)
    if dc == 1.0:
        return nir.LIF(tau=np.full(shape, tau, np.float32), r=np.full(shape, tau / dt, np.float32), v_leak=v_leak,
                       v_threshold=th, v_reset=zeros, metadata=meta(node, **extra))
    tau_syn = dt / dc
    return nir.CubaLIF(tau_syn=np.full(shape, tau_syn, np.float32), tau_mem=np.full(shape, tau, np.float32),
                       r=np.full(shape, tau / dt, np.float32), v_leak=v_leak, v_threshold=th, v_reset=zeros,
                       w_in=np.full(shape, tau_syn / dt, np.float32), metadata=meta(node, **extra))


def _readout(nir, node, name, shape, dt, meta):
    if node.mode == "spike_count":
        return None, []
    if node.leaky:
        if float(node.decay_current) != 1.0:
            raise UnsupportedOperator("a readout with a current decay has no NIR form (NIR's CubaLI is not read back yet)",
                                      node=name)
        dv = float(node.decay_voltage)
        tau = dt / dv
        bias = np.zeros(shape, np.float32) if node.bias is None else np.asarray(node.bias, np.float32)
        return nir.LI(tau=np.full(shape, tau, np.float32), r=np.full(shape, tau / dt, np.float32), v_leak=bias / dv,
                      metadata=meta(node, mode=node.mode)), []
    return nir.I(r=np.full(shape, 1.0 / dt, np.float32), metadata=meta(node, mode=node.mode)), \
        [f"{name}: snc reads this integrator's membrane / T as the output"]
