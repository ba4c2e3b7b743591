"""NIR graphs (``.nir``, the Neuromorphic Intermediate Representation, read with the ``nir``
package) in, spiking snc graphs out.

NIR is continuous in time; snc steps. Every neuron is discretised with an explicit step ``dt``
(default 1e-4 s, what snnTorch and SpikingJelly export with) by forward Euler, and the result is
reported per population in ``graph.meta["notes"]`` and ``graph.meta["nir"]``:

* ``LIF``  tau v' = (v_leak - v) + r I:  v <- (1 - dt/tau) v + (dt/tau) r I + (dt/tau) v_leak
  -> snc LIF with decay_voltage = dt/tau (no current state: decay_current = 1), input gain
  (dt/tau) r, bias (dt/tau) v_leak. snnTorch writes tau = dt/(1 - beta), r = tau/dt, so this is
  its v <- beta v + I exactly.
* ``IF``   v' = r I:  v <- v + dt r I  -> snc IF with input gain dt r.
* ``CubaLIF`` tau_syn I' = -I + w_in S, tau_mem v' = (v_leak - v) + r I -> snc LIF with
  decay_current = dt/tau_syn, decay_voltage = dt/tau_mem, input gain (dt/tau_syn) w_in (dt/tau_mem) r.
* ``LI`` feeding an ``Output`` -> a leaky readout (its membrane is the output); ``I`` feeding an
  ``Output`` -> a perfect integrator (snc's output is its membrane / T); an ``Output`` after
  spiking neurons -> a spike-count readout.

A file written by snc's NIR export carries the snc graph itself (``snc_artifact``); when its NIR
nodes still agree with it (weights, thresholds), that graph is returned as it was.

A gain within 1e-5 of 1 is taken as 1 (producers write r = tau/dt in float32, 1 - 3e-7); any
other gain scales the weights of the synapses feeding the population. Affine biases become the
neurons' bias currents (times the gain). Spikes fire when v > v_threshold (strict, as NIR) and
reset v to v_reset, which must be 0 (snc's ``zero`` reset); NIR has no subtractive reset, so a
producer whose neurons subtract (snnTorch's default, Sinabs) loses it on export: ``reset=
"subtract"`` restores it, and ``reset_timing="next_step"`` applies a spike's reset after the next
step's decay and input, as snnTorch does (snc's CubaLIF with that timing); a dict
{population: timing} sets it per population (snnTorch's Leaky resets to zero at once, its
Synaptic and RLeaky one step late). Several edges into one node are summed. Input nodes take spikes
(N, T, *shape) by default.

Recurrent edges (a cycle reached from an input, as snnTorch's RLeaky writes it) carry the previous
step's value: snc puts a one-step Delay on each edge that closes a cycle.

* ``Delay`` -> snc Delay of round(delay / dt) steps (one value for the whole tensor);
* ``Threshold`` -> a LIF without memory (v = its input each step, fires when v > threshold);
* ``CubaLI`` before an ``Output`` -> a leaky readout with a current decay.

Refused with the node's name: Conv1d, LI, CubaLI or I not followed by an Output,
a reset to a value other than 0, nested graphs.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from snc.errors import InvalidModel, UnsupportedOperator
from snc.ir import IF, LIF, AvgPool2d, Conv2d, Delay, Dense, Flatten, Graph, Input, Readout, Scale, SumPool2d
from snc.ir.synapses import Add

DEFAULT_DT = 1e-4
_GAIN_TOLERANCE = 1e-5


def load_nir(path: str | os.PathLike, *, dt: float = DEFAULT_DT, reset: str | None = None,
             reset_timing: str | dict = "immediate", encoding: str = "spikes") -> Graph:
    """Read a ``.nir`` file (HDF5, through ``nir.read``) into a spiking graph. Raises
    InvalidModel naming the file for unreadable files, UnsupportedOperator naming the node."""
    import nir

    path = Path(path)
    try:
        g = nir.read(str(path))
    except Exception as exc:  # h5py and nir raise many types; one line for the user
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidModel(f"not a readable NIR file ({type(exc).__name__}: {first[:200]})", file=str(path)) from None
    own = _snc_graph(g)
    if own is not None:  # written by snc, and its NIR nodes still agree with the graph it carries
        return own
    try:
        graph = from_nir(g, dt=dt, reset=reset, reset_timing=reset_timing, encoding=encoding, name=path.stem)
    except (UnsupportedOperator, InvalidModel) as exc:
        exc.file = exc.file or str(path)
        raise
    graph.meta["source"]["file"] = str(path)
    return graph


def _snc_graph(g) -> Graph | None:
    """The graph snc's NIR export stored in the file (``snc_artifact``), if every weight,
    threshold and edge source of the NIR nodes still equals it; None otherwise."""
    blob = (getattr(g, "metadata", None) or {}).get("snc_artifact")
    if blob is None:
        return None
    from snc.ir.artifact import from_bytes

    try:
        graph = from_bytes(np.asarray(blob, np.uint8).tobytes(), file="<snc_artifact>")
    except Exception:
        return None
    for name, node in graph.nodes.items():
        n = g.nodes.get(name)
        if node.kind in ("Dense", "Conv2d"):
            if n is None or not np.array_equal(np.asarray(n.weight, np.float32), np.asarray(node.weight, np.float32)):
                return None
        if node.kind in ("IF", "LIF"):
            th = np.broadcast_to(np.asarray(node.threshold, np.float32), node.shape)
            if n is None or not np.array_equal(np.asarray(n.v_threshold, np.float32), th):
                return None
    return graph


def _arr(v: Any) -> np.ndarray:
    return np.asarray(v.detach().numpy() if hasattr(v, "detach") else v, dtype=np.float64)


def _shape(t: Any) -> tuple[int, ...]:
    value = t.get("input", t.get("output")) if isinstance(t, dict) else t
    return tuple(int(d) for d in np.asarray(value).reshape(-1))


def _pair(v: Any) -> tuple[int, int]:
    a = np.asarray(v).reshape(-1)
    return (int(a[0]), int(a[0])) if a.size == 1 else (int(a[0]), int(a[1]))


def from_nir(g, *, dt: float = DEFAULT_DT, reset: str | None = None, reset_timing: str | dict = "immediate",
             encoding: str = "spikes", name: str = "nir") -> Graph:
    import networkx as nx

    if not dt > 0:
        raise InvalidModel(f"dt must be > 0, got {dt}")
    if reset not in (None, "zero", "subtract"):
        raise InvalidModel(f"reset must be 'zero' or 'subtract', got {reset!r}")
    timings = dict(reset_timing) if isinstance(reset_timing, dict) else {}
    for value in (timings.values() if timings else [reset_timing]):
        if value not in ("immediate", "next_step"):
            raise InvalidModel(f"reset timing must be 'immediate' or 'next_step', got {value!r}")

    def timing_of(n: str) -> str:
        return timings.get(n, "immediate") if timings else reset_timing
    nodes = dict(g.nodes)
    edges = [(str(a), str(b)) for a, b in g.edges]
    for a, b in edges:
        for n in (a, b):
            if n not in nodes:
                raise InvalidModel(f"edge ({a!r}, {b!r}) names a node that does not exist", node=n)
    dg = nx.DiGraph()
    dg.add_nodes_from(nodes)
    dg.add_edges_from(edges)
    back = _back_edges(dg, [n for n in nodes if type(nodes[n]).__name__ == "Input"])
    fwd = dg.copy()
    fwd.remove_edges_from(back)
    if not nx.is_directed_acyclic_graph(fwd):  # a cycle not reachable from an input
        cycle = nx.find_cycle(fwd)
        raise UnsupportedOperator(f"a cycle through {cycle[0][0]!r} that no input reaches", node=cycle[0][0])
    preds = {n: list(fwd.predecessors(n)) for n in nodes}
    back_into: dict[str, list[str]] = {}
    for u, v in back:
        back_into.setdefault(v, []).append(u)
    succs = {n: list(dg.successors(n)) for n in nodes}
    out = Graph(name)
    notes: list[str] = []
    per_pop: dict[str, dict] = {}
    made: dict[str, str] = {}  # NIR node -> the snc node that carries its value
    bias_of: dict[str, np.ndarray] = {}  # Affine node -> its bias, for the neurons it feeds
    outputs: list[str] = []

    def kind(n: str) -> str:
        return type(nodes[n]).__name__

    def source(n: str, what: str) -> str:
        """The snc node carrying the sum of n's inputs (an Add when several edges meet)."""
        ins = [made[p] for p in preds[n] if p in made]
        if not ins:
            raise UnsupportedOperator(f"{what} has no input", node=n)
        if len(ins) == 1:
            return ins[0]
        out.add(f"{n}.sum", Add(), ins)
        return f"{n}.sum"

    def gained(n: str, gain: np.ndarray, shape: tuple[int, ...]) -> tuple[list[str], np.ndarray | None]:
        """The population's inputs with ``gain`` applied, and its bias current from Affine biases."""
        ins = [made[p] for p in preds[n]]
        bias = np.zeros(shape)
        has_bias = False
        for p in preds[n] + back_into.get(n, []):
            if p in bias_of:
                bias = bias + np.broadcast_to(_bias_shape(bias_of[p], shape), shape)
                has_bias = True
        g_arr = np.broadcast_to(gain, shape)
        if np.all(np.abs(g_arr - 1.0) <= _GAIN_TOLERANCE):
            return ins, (bias.astype(np.float32) if has_bias else None)
        if back_into.get(n):
            raise UnsupportedOperator("a recurrent population whose input gain (dt/tau) r is not 1", node=n)
        scaled = f"{n}.gain"
        src = ins[0] if len(ins) == 1 else None
        if src is None:
            out.add(f"{n}.sum", Add(), ins)
            src = f"{n}.sum"
        out.add(scaled, Scale(scale=np.asarray(g_arr, np.float32)), [src])
        return [scaled], ((g_arr * bias).astype(np.float32) if has_bias else None)

    for n, node in nodes.items():  # biases first: a recurrent edge's bias reaches its population before the edge is read
        if kind(n) in ("Affine", "Conv2d") and getattr(node, "bias", None) is not None and np.any(_arr(node.bias) != 0):
            _neurons_only(n, succs[n], kind, "its bias becomes their bias current")
            bias_of[n] = _arr(node.bias)

    def _population_shape(n: str, node, field: str) -> tuple[int, ...]:
        """A neuron node's shape: its parameters' (per neuron), else what feeds it (scalar
        parameters broadcast, as Norse and snnTorch's defaults write them)."""
        shape = tuple(int(d) for d in np.shape(_arr(getattr(node, field))))
        if shape:
            return shape
        ins = [made[p] for p in preds[n] if p in made]
        if ins:
            return tuple(out.infer_shapes()[ins[0]])
        return _shape(node.input_type)

    def _read_node(n: str) -> None:
        node = nodes[n]
        k = kind(n)
        if k == "Input":
            shape = _shape(node.input_type)
            out.add(n, Input(shape=shape, encoding=encoding))
            made[n] = n
        elif k in ("Affine", "Linear"):
            w = _arr(node.weight)
            if w.ndim != 2:
                raise UnsupportedOperator(f"{k} weight of shape {w.shape} (snc reads 2-D weights)", node=n)
            out.add(n, Dense(weight=w.astype(np.float32)), [source(n, k)])
            made[n] = n
        elif k == "Conv2d":
            w = _arr(node.weight)
            pad = _pair(node.padding) if not isinstance(node.padding, str) else None
            if pad is None:
                raise UnsupportedOperator(f"Conv2d padding {node.padding!r} (snc reads explicit padding)", node=n)
            out.add(n, Conv2d(weight=w.astype(np.float32), stride=_pair(node.stride), padding=pad,
                              dilation=_pair(node.dilation), groups=int(np.asarray(node.groups).reshape(-1)[0])),
                    [source(n, k)])
            made[n] = n
        elif k in ("SumPool2d", "AvgPool2d"):
            cls = SumPool2d if k == "SumPool2d" else AvgPool2d
            out.add(n, cls(kernel=_pair(node.kernel_size), stride=_pair(node.stride), padding=_pair(node.padding)),
                    [source(n, k)])
            made[n] = n
        elif k == "Flatten":
            out.add(n, Flatten(), [source(n, k)])
            made[n] = n
        elif k == "Scale":
            out.add(n, Scale(scale=_arr(node.scale).astype(np.float32)), [source(n, k)])
            made[n] = n
        elif k == "Delay":
            steps = np.rint(_arr(node.delay) / dt).astype(np.int64)
            if steps.size and not np.all(steps == steps.reshape(-1)[0]):
                raise UnsupportedOperator("per-element delays that differ (snc's Delay shifts a whole value)", node=n)
            d = int(steps.reshape(-1)[0]) if steps.size else 0
            if d < 1:
                raise UnsupportedOperator(f"a delay of {float(_arr(node.delay).reshape(-1)[0]):g} s is under one step of "
                                          f"dt = {dt:g} s", node=n)
            out.add(n, Delay(steps=d), [source(n, k)])
            made[n] = n
            notes.append(f"{n}: NIR Delay at dt = {dt:g} s -> {d} step(s)")
        elif k == "Threshold":  # z = H(x - theta), no state: a LIF that forgets everything each step
            shape = _population_shape(n, node, "threshold")
            threshold = np.broadcast_to(_arr(node.threshold), shape).astype(np.float32)
            out.add(n, LIF(shape=shape, threshold=threshold, reset="zero", decay_current=1.0, decay_voltage=1.0),
                    [made[p] for p in preds[n]])
            made[n] = n
            notes.append(f"{n}: NIR Threshold -> snc LIF without memory (v = input, spikes when v > threshold)")
        elif k in ("LIF", "IF", "CubaLIF"):
            shape = _population_shape(n, node, "v_threshold")
            v_reset = _arr(node.v_reset) if getattr(node, "v_reset", None) is not None else np.zeros(1)
            if np.any(v_reset != 0):
                raise UnsupportedOperator("a reset to a value other than 0 (snc's LIF resets to 0 or subtracts)", node=n)
            r = _arr(node.r)
            if k == "IF":
                gain, dv, dc, leak = dt * r, None, None, np.zeros(1)
            elif k == "LIF":
                a = dt / _arr(node.tau)
                gain, dv, dc, leak = a * r, a, 1.0, a * _arr(node.v_leak)
            else:
                a_s, a_m = dt / _arr(node.tau_syn), dt / _arr(node.tau_mem)
                gain, dv, dc, leak = a_s * _arr(node.w_in) * a_m * r, a_m, a_s, a_m * _arr(node.v_leak)
                if any(p in bias_of for p in preds[n]):
                    raise UnsupportedOperator("a CubaLIF fed through a bias (it passes the synaptic current, not v)", node=n)
            for what, v in (("decay", dv), ("synaptic decay", dc)):
                if v is not None and np.any((np.asarray(v) <= 0) | (np.asarray(v) > 1)):
                    raise UnsupportedOperator(f"{what} dt/tau outside (0, 1] with dt = {dt:g} s: choose a smaller dt", node=n)
            ins, bias = gained(n, gain, shape)
            if np.any(leak != 0):
                bias = (np.zeros(shape, np.float32) if bias is None else bias) + np.broadcast_to(leak, shape).astype(np.float32)
            mode = reset or "zero"
            threshold = np.broadcast_to(_arr(node.v_threshold), shape).astype(np.float32)
            if timing_of(n) == "next_step":  # snnTorch: a spike's reset lands after the next step's decay and input
                from snc.ir import CubaLIF

                pop = CubaLIF(shape=shape, threshold=threshold, reset=mode, bias=bias, reset_timing="next_step",
                              decay_current=1.0 if dc is None else _scalar(dc, n, "synaptic decay"),
                              decay_voltage=0.0 if dv is None else _scalar(dv, n, "decay"))
            elif k == "IF":
                pop = IF(shape=shape, threshold=threshold, reset=mode, bias=bias)
            else:
                pop = LIF(shape=shape, threshold=threshold, reset=mode, bias=bias,
                          decay_current=_scalar(dc, n, "synaptic decay"), decay_voltage=_scalar(dv, n, "decay"))
            out.add(n, pop, ins)
            made[n] = n
            per_pop[n] = {"nir": k, "dt": dt, "gain": float(np.mean(gain)), "decay_voltage": None if dv is None else float(np.mean(dv)),
                          "decay_current": None if dc is None else float(np.mean(dc)), "reset": mode}
            notes.append(f"{n}: NIR {k} at dt = {dt:g} s -> snc {pop.kind}"
                         + ("" if dv is None else f", decay {float(np.mean(dv)):.6g}")
                         + ("" if dc is None or np.all(np.asarray(dc) == 1.0) else f", synaptic decay {float(np.mean(dc)):.6g}")
                         + f", input gain {float(np.mean(gain)):.6g}"
                         + (" (taken as 1)" if np.all(np.abs(np.broadcast_to(gain, shape) - 1) <= _GAIN_TOLERANCE) else "")
                         + f", reset {mode}" + (" (NIR: to v_reset = 0)" if reset is None else " (asked for)")
                         + (", applied at the next step" if timing_of(n) == "next_step" else ""))
        elif k == "CubaLI":
            if not all(kind(s) == "Output" for s in succs[n]) or not succs[n]:
                raise UnsupportedOperator("CubaLI is read only as the readout before an Output", node=n)
            if any(p in bias_of for p in preds[n]):
                raise UnsupportedOperator("a CubaLI fed through a bias (it passes the synaptic current, not v)", node=n)
            a_s, a_m = dt / _arr(node.tau_syn), dt / _arr(node.tau_mem)
            shape = _population_shape(n, node, "tau_mem")
            ins, bias = gained(n, a_s * _arr(node.w_in) * a_m * _arr(node.r), shape)
            leak = a_m * _arr(node.v_leak)
            if np.any(leak != 0):
                bias = (np.zeros(shape, np.float32) if bias is None else bias) + np.broadcast_to(leak, shape).astype(np.float32)
            out.add(n, Readout(shape=shape, mode="membrane", bias=bias, decay_current=_scalar(a_s, n, "synaptic decay"),
                               decay_voltage=_scalar(a_m, n, "decay")), ins)
            made[n] = n
            outputs.append(n)
            notes.append(f"{n}: NIR CubaLI at dt = {dt:g} s -> snc leaky readout, synaptic decay "
                         f"{float(np.mean(a_s)):.6g}, decay {float(np.mean(a_m)):.6g}")
        elif k == "LI":
            if not all(kind(s) == "Output" for s in succs[n]) or not succs[n]:
                raise UnsupportedOperator("LI is read only as the readout before an Output", node=n)
            a = dt / _arr(node.tau)
            shape = _population_shape(n, node, "tau")
            ins, bias = gained(n, a * _arr(node.r), shape)
            leak = a * _arr(node.v_leak)
            if np.any(leak != 0):
                bias = (np.zeros(shape, np.float32) if bias is None else bias) + np.broadcast_to(leak, shape).astype(np.float32)
            out.add(n, Readout(shape=shape, mode="membrane", bias=bias, decay_current=1.0,
                               decay_voltage=_scalar(a, n, "decay")), ins)
            made[n] = n
            outputs.append(n)
            notes.append(f"{n}: NIR LI at dt = {dt:g} s -> snc leaky readout, decay {float(np.mean(a)):.6g}")
        elif k == "I":
            if not all(kind(s) == "Output" for s in succs[n]) or not succs[n]:
                raise UnsupportedOperator("I is read only as the readout before an Output", node=n)
            shape = _population_shape(n, node, "r")
            ins, bias = gained(n, dt * _arr(node.r), shape)
            out.add(n, Readout(shape=shape, mode="membrane", bias=bias), ins)
            made[n] = n
            outputs.append(n)
            notes.append(f"{n}: NIR I at dt = {dt:g} s -> snc perfect-integrator readout (its output is v[T] / T)")
        elif k == "Output":
            ups = preds[n]
            if len(ups) == 1 and kind(ups[0]) in ("LI", "I", "CubaLI"):
                return
            if len(ups) != 1 or kind(ups[0]) not in ("LIF", "IF", "CubaLIF", "Threshold"):
                raise UnsupportedOperator("an Output is read after one spiking population or an LI", node=n)
            shape = out.infer_shapes()[made[ups[0]]]
            out.add(n, Readout(shape=shape, mode="spike_count"), [made[ups[0]]])
            outputs.append(n)
        else:
            raise UnsupportedOperator(f"NIR {k} is not supported (snc reads Input, Output, Affine, Linear, Scale, Conv2d, "
                                      "SumPool2d, AvgPool2d, Flatten, Delay, Threshold, IF, LIF, CubaLIF, and LI, CubaLI or I before an "
                                      "Output)", node=n)

    for n in nx.topological_sort(fwd):
        try:
            _read_node(n)
        except (UnsupportedOperator, InvalidModel):
            raise
        except Exception as exc:  # a field of the wrong type or shape: one line naming the node
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InvalidModel(f"NIR {kind(n)} has a field snc cannot read ({type(exc).__name__}: {first[:200]})",
                               node=n) from None
    for u, v in back:  # recurrent edges carry the previous step's value (as every discrete simulator does)
        if u not in made or v not in made:
            raise UnsupportedOperator(f"a recurrent edge ({u!r} -> {v!r}) between nodes snc does not keep", node=v)
        delay = f"{u}.delay"
        if delay not in out.nodes:
            out.add(delay, Delay(steps=1), [made[u]])
        out.set_inputs(made[v], out.inputs_of(made[v]) + [delay])
        notes.append(f"{u} -> {v}: recurrent edge, delayed one step")
    if not outputs:
        raise InvalidModel("the NIR graph has no Output")
    out.outputs = outputs
    out.meta["source"] = {"format": "nir", "dt": dt, "reset": reset or "zero (NIR)", "encoding": encoding}
    out.meta["nir"] = {"dt": dt, "populations": per_pop}
    out.meta["notes"] = notes
    out.meta["timesteps"] = 100
    out.validate()
    return out


def _back_edges(dg, roots: list[str]) -> list[tuple[str, str]]:
    """Edges that close a cycle in a depth-first walk from the inputs (the recurrent edges)."""
    back, state = [], {}
    for root in roots:
        if root in state:
            continue
        stack = [(root, iter(sorted(dg.successors(root))))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                back.append((node, nxt))
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(sorted(dg.successors(nxt)))))
    return back


def _scalar(v: Any, node: str, what: str) -> float:
    a = np.asarray(v, np.float64).reshape(-1)
    if not np.allclose(a, a[0], rtol=1e-6, atol=0):
        raise UnsupportedOperator(f"per-neuron {what} (snc's populations share one)", node=node)
    return float(a[0])


def _bias_shape(b: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """An Affine (out,) or Conv (C,) bias laid out over a population of ``shape``."""
    b = np.asarray(b, np.float64)
    if b.shape == shape:
        return b
    if len(shape) == 3 and b.shape == (shape[0],):
        return b.reshape(-1, 1, 1)
    return b


def _neurons_only(n: str, succs: list[str], kind, why: str) -> None:
    bad = [s for s in succs if kind(s) not in ("LIF", "IF", "CubaLIF", "LI", "I", "Threshold")]
    if bad:
        raise UnsupportedOperator(f"a bias feeding {bad[0]!r} ({kind(bad[0])}): snc moves biases into the neurons they "
                                  f"feed ({why})", node=n)
