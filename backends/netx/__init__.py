"""netx HDF5 out: a quantised chain of dense (and conv) layers of CUBA neurons as a lava-dl netx
network (``.net``) that ``lava.lib.dl.netx.hdf5.Network`` loads (../shared/reference/NETX_FORMAT.md).

    export_netx(graph, "net.net")            # snc export ARTIFACT --to netx -o net.net

netx runs layers in a chain: Input -> [Dense|Conv2d (-> Flatten)] -> population, repeated, and a
readout. What netx's CUBA neuron computes is Lava's LIF in fixed point, so the graph must be
quantised (``snc compile`` with the default ``quantize``) and every population must be an IF or
LIF that resets to zero with no refractory period. Written per layer:

* ``weight``: the effective integer input per spike, ``w << weight_exp`` (netx feeds the HDF5
  integers in exactly for [-256, 254]); a negative exponent must divide the mantissas;
* ``bias``: ``bias_mant << bias_exp`` in units of 2**6 (netx's ``bias_exp`` 6);
* neuron ``CUBA``: ``vThMant = vth``, ``iDecay = du + 1``, ``vDecay = dv``;
* a perfect-integrator readout becomes a dense layer with netx's default neuron (it never fires:
  a current integrator); a spike-count readout adds nothing (the last population's spikes are
  the output).

Refused with the node's name: branches, subtractive reset, refractoriness, pools, delays, leaky
or biased readouts, weights outside netx's range.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from snc.errors import InvalidGraph, UnsupportedOperator
from snc.ir import Graph


def export_netx(graph: Graph, path: str | os.PathLike, *, timesteps: int | None = None) -> Path:
    """Write ``graph`` as a netx HDF5 file (temp file + rename); returns the path."""
    import h5py

    layers = netx_layers(graph)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".net", dir=str(path.parent))
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            top = f.create_group("layer")
            for i, layer in enumerate(layers):
                g = top.create_group(str(i))
                g.create_dataset("type", (1,), "S10", [layer["type"].encode()])
                g.create_dataset("shape", data=np.asarray(layer["shape"], np.int64))
                for key in ("weight", "bias"):
                    if layer.get(key) is not None:
                        g.create_dataset(key, data=np.asarray(layer[key], np.float32))
                for key in ("stride", "padding", "dilation"):
                    if key in layer:
                        g.create_dataset(key, data=np.asarray(layer[key], np.int64))
                if "groups" in layer:
                    g.create_dataset("groups", data=np.int64(layer["groups"]))
                if layer.get("neuron"):
                    n = g.create_group("neuron")
                    n.create_dataset("type", data=b"CUBA")
                    for key, value in layer["neuron"].items():
                        n.create_dataset(key, data=np.int64(value))
                g.attrs["snc_node"] = layer["snc_node"]
            if timesteps:
                sim = f.create_group("simulation")
                sim.create_dataset("Ts", data=np.int64(1))
                sim.create_dataset("tSample", data=np.int64(timesteps))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def netx_layers(graph: Graph) -> list[dict]:
    """The layers netx will build, in order: {type, shape, weight, bias, neuron, snc_node, ...}."""
    if not graph.is_spiking or not graph.meta.get("quantized"):
        raise InvalidGraph("netx export takes a quantised spiking graph (snc compile with quantize)")
    shapes = graph.validate()
    inputs = graph.input_names
    if len(inputs) != 1 or len(graph.outputs) != 1:
        raise UnsupportedOperator("netx runs one chain: one input and one output")
    layers: list[dict] = []
    name = inputs[0]
    if graph.nodes[name].encoding != "spikes":
        layers.append({"type": "input", "shape": shapes[name], "snc_node": name})
    pending_flatten = False
    while True:
        users = graph.users_of(name)
        if not users:
            break
        if len(users) != 1:
            raise UnsupportedOperator(f"{name!r} feeds {len(users)} nodes; netx runs one chain", node=name)
        (nxt,) = users
        node = graph.nodes[nxt]
        if node.kind == "Flatten":
            pending_flatten = True
            name = nxt
            continue
        if node.kind == "Readout" and node.mode == "spike_count":
            break
        if node.kind not in ("Dense", "Conv2d"):
            raise UnsupportedOperator(f"{node.kind} has no netx layer (netx takes dense, conv and flatten)", node=nxt)
        if len(graph.inputs_of(nxt)) != 1:
            raise UnsupportedOperator("a synapse with several inputs; netx runs one chain", node=nxt)
        if pending_flatten:
            layers.append({"type": "flatten", "shape": shapes[name], "snc_node": name})
            pending_flatten = False
        weight = _weights(node, nxt)
        (pop,) = graph.users_of(nxt) if len(graph.users_of(nxt)) == 1 else (None,)
        if pop is None:
            raise UnsupportedOperator("a synapse feeding several nodes; netx runs one chain", node=nxt)
        p = graph.nodes[pop]
        layer = {"type": "dense" if node.kind == "Dense" else "conv", "shape": shapes[pop], "weight": weight,
                 "snc_node": pop}
        if node.kind == "Conv2d":
            top, left, bottom, right = node.padding
            if (top, left) != (bottom, right):
                raise UnsupportedOperator(f"asymmetric padding {node.padding}", node=nxt)
            layer.update(stride=node.stride, padding=(top, left), dilation=node.dilation, groups=node.groups)
        if p.kind == "Readout":
            if p.mode != "membrane" or p.leaky or (p.bias is not None and np.any(p.bias != 0)):
                raise UnsupportedOperator("netx ends in a never-firing integrator: a readout must be a perfect "
                                          "integrator without bias (or count the last population's spikes)", node=pop)
            layer["neuron"] = None  # netx's default CUBA: iDecay 0, vDecay 4096, never fires
            layers.append(layer)
            break
        layer["neuron"], layer["bias"] = _cuba(p, pop, shapes[pop], node.kind)
        layers.append(layer)
        name = pop
    if not any(layer["type"] in ("dense", "conv") for layer in layers):
        raise UnsupportedOperator("no dense or conv layer to export")
    return layers


def _weights(node, name: str) -> np.ndarray:
    fx = node.fixed
    if fx is None or node.bias is not None:
        raise UnsupportedOperator("a synapse without fixed-point weights (or with a bias)", node=name)
    w = np.asarray(fx.weight, np.int64)
    e = int(fx.weight_exp)
    if e >= 0:
        eff = w << e
    else:
        if np.any(w % (1 << -e)):
            raise UnsupportedOperator(f"weight exponent {e} with mantissas it does not divide: netx feeds integer "
                                      "weights without a shift", node=name)
        eff = w >> -e
    if eff.max(initial=0) > 254 or eff.min(initial=0) < -256:
        raise UnsupportedOperator(f"effective weights {eff.min()}..{eff.max()} exceed netx's [-256, 254]", node=name)
    return eff


def _cuba(p, name: str, shape, synapse: str) -> tuple[dict, np.ndarray | None]:
    if p.kind not in ("IF", "LIF") or type(p).__name__ not in ("IF", "LIF"):
        raise UnsupportedOperator(f"{p.kind} has no netx neuron (netx's CUBA is an IF/LIF that resets to 0)", node=name)
    if p.reset != "zero":
        raise UnsupportedOperator("netx's CUBA neurons reset to 0; this population subtracts its threshold", node=name)
    if int(p.refractory):
        raise UnsupportedOperator("netx's CUBA neurons have no refractory period", node=name)
    fx = p.fixed
    if fx is None:
        raise UnsupportedOperator("a population without fixed-point parameters (run quantize)", node=name)
    bias = None
    mant = np.broadcast_to(np.asarray(fx.bias_mant, np.int64), shape) if np.size(fx.bias_mant) else np.zeros(shape, np.int64)
    if np.any(mant):
        be = int(fx.bias_exp)
        full = mant << be if be >= 0 else mant >> -be  # in units of v
        if np.any(full % 64):
            raise UnsupportedOperator(f"bias {int(mant.flat[0])} << {be} is not a whole number of weight units "
                                      "(netx's bias_exp is 6)", node=name)
        bias = full // 64
        if synapse == "Conv2d":
            per = bias.reshape(bias.shape[0], -1)
            if not np.all(per == per[:, :1]):
                raise UnsupportedOperator("a bias that varies over positions (netx's conv bias is per channel)", node=name)
            bias = per[:, 0]
    return {"vThMant": int(fx.vth), "iDecay": int(fx.du) + 1, "vDecay": int(fx.dv), "refDelay": 1}, bias


def run_in_lava(path: str | os.PathLike, spikes: np.ndarray, steps: int, *, timeout: float | None = None,
                python: str | None = None) -> dict[str, np.ndarray]:
    """Load ``path`` with lava-dl's own ``netx.hdf5.Network`` in the Lava environment and run it
    in fixed point on spike samples (N, steps, n_in). Returns {"layer<i>": (N, steps, n)} spikes.
    Needs lava-dl 0.6.0 in that environment (``make lava`` installs it without dependencies)."""
    import subprocess

    from snc.backends.lava.runner import _kill_group, lava_python
    from snc.errors import BackendError

    python = python or lava_python()
    script = Path(__file__).with_name("lava_run.py")
    with tempfile.TemporaryDirectory(prefix="snc-netx-") as d:
        inp, out = Path(d) / "input.npy", Path(d) / "spikes.npz"
        np.save(inp, np.asarray(spikes).astype(np.int32))
        cmd = [python, str(script), str(path), "--input", str(inp), "--steps", str(int(steps)), "--out", str(out)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            _, err = proc.communicate(timeout=timeout or 60 + 10 * len(spikes))
        except subprocess.TimeoutExpired:
            raise BackendError("Lava (netx) did not finish in time; its processes were stopped") from None
        finally:
            _kill_group(proc)
        if proc.returncode != 0:
            lines = [line for line in (err or "").splitlines() if line.strip()]
            raise BackendError(f"Lava (netx) run failed (exit {proc.returncode}): {lines[-1] if lines else 'no message'}")
        with np.load(out, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
