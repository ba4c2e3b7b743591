"""lava-dl netx HDF5 networks (``.net``) in, fixed-point snc graphs out.

A netx file is a chain of layers (``layer/0``, ``layer/1``, ...; ../shared/reference/NETX_FORMAT.md
describes the format as lava-dl 0.6.0 reads it). snc reads it with h5py (nothing is unpickled or
executed) the way netx does:

* ``dense`` / ``conv``: integer weights (float32 datasets truncated toward 0, as netx's
  ``astype(int)``), the effective synaptic input per spike; an optional bias (``bias_mant`` with
  ``bias_exp`` 6, i.e. weight units per step);
* ``CUBA`` neurons: ``vThMant``, ``iDecay``, ``vDecay`` -> snc LIF in Loihi fixed point
  (``vth = vThMant``, ``du = iDecay - 1``, ``dv = vDecay``, reset to 0), with the float model
  beside it in weight units (threshold vThMant, decays iDecay/4096 and vDecay/4096); a layer
  without a ``neuron`` group gets netx's default, which never fires (a current integrator);
* ``flatten``: snc Flatten (netx's WHC transpose then flatten is torch's CHW order);
* ``input``: the input shape (its optional neuron block is refused: netx does not connect it).

The network's output is the last layer's spike count (or, for a layer that never fires, its
membrane). The input is rate coded by default (``encoding``). Refused with the layer's name:
pooling, ``dense_rec``, delays, SDNN and resonate-and-fire neurons, unknown layer types (netx
skips those silently).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from snc.errors import InvalidModel, UnsupportedOperator
from snc.ir import LIF, Conv2d, Dense, Flatten, Graph, Input, NeuronFixed, Readout, SynapseFixed

NEVER = 1 << 17  # netx's default vThMant (its "1<<18-1" is 1<<17 by operator precedence)


def load_netx(path: str | os.PathLike, *, encoding: str = "rate") -> Graph:
    """Read a netx ``.net`` file. Raises InvalidModel (file, layer) for unreadable or malformed
    files and UnsupportedOperator for layers snc does not take."""
    import h5py

    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except Exception as exc:
        raise InvalidModel(f"not a readable netx HDF5 file ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})",
                           file=str(path)) from None
    with f:
        try:
            graph = _read(f, path.stem, encoding)
        except (InvalidModel, UnsupportedOperator) as exc:
            exc.file = exc.file or str(path)
            raise
        except Exception as exc:  # a dataset of the wrong type or shape
            raise InvalidModel(f"malformed netx file ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})",
                               file=str(path)) from None
    graph.meta["source"]["file"] = str(path)
    return graph


def _text(v) -> str:
    v = v[()]
    if isinstance(v, np.ndarray):
        v = v.reshape(-1)[0]
    return v.decode("ascii") if isinstance(v, bytes) else str(v)


def _int(g, key: str, default: int | None = None) -> int:
    if key not in g:
        if default is None:
            raise InvalidModel(f"missing {key!r}")
        return default
    return int(np.asarray(g[key][()]).reshape(-1)[0])


def _pair(g, key: str) -> tuple[int, int]:
    a = np.asarray(g[key][()]).reshape(-1)
    return (int(a[0]), int(a[0])) if a.size == 1 else (int(a[0]), int(a[1]))


def _read(f, name: str, encoding: str) -> Graph:
    if "layer" not in f:
        raise InvalidModel("no 'layer' group (not a netx network)")
    keys = list(f["layer"].keys())
    try:
        order = sorted(keys, key=int)
    except ValueError:
        raise InvalidModel(f"layer groups must be named 0, 1, ...: found {keys}") from None
    if [int(k) for k in order] != list(range(len(order))):
        raise InvalidModel(f"layer groups must be contiguous from 0: found {order}")
    g = Graph(name)
    prev: str | None = None
    shape: tuple[int, ...] | None = None
    last_fires = True
    for key in order:
        layer = f["layer"][key]
        lname = f"layer{key}"
        if "type" not in layer:
            raise InvalidModel("missing 'type'", node=lname)
        kind = _text(layer["type"])
        if kind == "input":
            if "neuron" in layer:
                raise UnsupportedOperator("an input layer with a neuron block (netx does not connect its input port)", node=lname)
            shape = tuple(int(d) for d in np.asarray(layer["shape"][()]).reshape(-1))
            if prev is None:
                g.add("input", Input(shape=shape, encoding=encoding))
                prev = "input"
            continue
        if kind == "flatten":
            if prev is None:
                raise InvalidModel("a flatten layer before any input", node=lname)
            g.add(lname, Flatten(), [prev])
            prev, shape = lname, (int(np.prod(shape)),)
            continue
        if kind not in ("dense", "conv"):
            raise UnsupportedOperator(f"netx layer type {kind!r} (snc reads input, dense, conv and flatten layers)", node=lname)
        if "delay" in layer:
            raise UnsupportedOperator("synaptic delays of netx layers are not read yet", node=lname)
        w = np.asarray(layer["weight"][()])
        wi = np.trunc(w).astype(np.int64)  # netx: astype(int)
        if kind == "dense":
            if wi.ndim == 1:
                wi = wi.reshape(_int(layer, "shape"), -1)
            if prev is None:
                g.add("input", Input(shape=(wi.shape[1],), encoding=encoding))
                prev, shape = "input", (wi.shape[1],)
            if int(np.prod(shape)) != wi.shape[1]:
                raise InvalidModel(f"dense weight {wi.shape} does not take the {int(np.prod(shape))} values before it", node=lname)
            if len(shape) != 1:
                g.add(f"{lname}.flatten", Flatten(), [prev])
                prev = f"{lname}.flatten"
            out_shape = (wi.shape[0],)
            syn = Dense(weight=wi.astype(np.float32), fixed=SynapseFixed(weight=wi.astype(np.int32), weight_exp=0, weight_bits=9))
        else:
            if wi.ndim == 5:
                wi = wi[..., 0]
            if prev is None or shape is None or len(shape) != 3:
                raise InvalidModel("a conv layer needs a (C, H, W) input shape before it (an input layer)", node=lname)
            pad = _pair(layer, "padding")
            syn = Conv2d(weight=wi.astype(np.float32), stride=_pair(layer, "stride"), padding=pad,
                         dilation=_pair(layer, "dilation"), groups=_int(layer, "groups", 1),
                         fixed=SynapseFixed(weight=wi.astype(np.int32), weight_exp=0, weight_bits=9))
            out_shape = syn.infer_shape(lname, [shape])
            declared = tuple(int(d) for d in np.asarray(layer["shape"][()]).reshape(-1))
            if declared != tuple(out_shape):
                raise InvalidModel(f"declared shape {declared} differs from the convolution's {tuple(out_shape)}", node=lname)
        g.add(f"{lname}.synapse", syn, [prev])
        neuron = layer["neuron"] if "neuron" in layer else None
        ntype = _text(neuron["type"]) if neuron is not None else "CUBA"
        if ntype not in ("CUBA", "LOIHI"):
            raise UnsupportedOperator(f"netx neuron type {ntype!r} (snc reads CUBA)", node=lname)
        vth = _int(neuron, "vThMant") if neuron is not None else NEVER
        i_decay = _int(neuron, "iDecay") if neuron is not None else 0
        v_decay = _int(neuron, "vDecay") if neuron is not None else 4096
        if not (0 <= i_decay <= 4096 and 0 <= v_decay <= 4096 and vth > 0):
            raise InvalidModel(f"CUBA parameters out of range: vThMant {vth}, iDecay {i_decay}, vDecay {v_decay}", node=lname)
        bias = np.zeros(out_shape, np.int64)
        if "bias" in layer:
            b = np.trunc(np.asarray(layer["bias"][()])).astype(np.int64)
            bias = b.reshape(-1, 1, 1) * np.ones(out_shape, np.int64) if (len(out_shape) == 3 and b.ndim == 1) else b.reshape(out_shape)
        fixed = NeuronFixed(vth=vth, bias_mant=bias.astype(np.int32), bias_exp=6, du=i_decay - 1, dv=v_decay, scale=1.0)
        pop = LIF(shape=tuple(out_shape), threshold=float(vth), reset="zero",
                  bias=bias.astype(np.float32) if np.any(bias) else None,
                  decay_current=i_decay / 4096, decay_voltage=v_decay / 4096, fixed=fixed)
        g.add(lname, pop, [f"{lname}.synapse"])
        prev, shape, last_fires = lname, tuple(out_shape), vth < NEVER
    if prev is None or prev == "input":
        raise InvalidModel("no dense or conv layer")
    if last_fires:
        count = NeuronFixed(vth=1, bias_mant=np.zeros(shape, np.int32), bias_exp=0, du=4095, dv=0, scale=1.0)
        g.add("output", Readout(shape=shape, mode="spike_count", fixed=count), [prev])
    else:  # netx's never-firing default neuron: a current integrator whose membrane is the output
        raise UnsupportedOperator("a last layer that never fires (netx's default neuron) is not read yet", node=prev)
    g.outputs = ["output"]
    g.meta["source"] = {"format": "netx", "encoding": encoding}
    g.meta["quantized"] = True
    g.meta["timesteps"] = 64
    g.validate()
    return g
