"""``quantize``: weights and neuron state to the chip's fixed point (Loihi / Lava ``fixed_pt``).

For every population P (units: one *a-unit* = the value q_P of one weight LSB):

* each weighted operator o feeding P (Dense, Conv2d, or a gain Scale) gets signed integer
  mantissas and an exponent e_o >= 0 (left shifts keep every sum exact):
      W_o ~= q_P * 2**e_o * W_int,   |W_int| <= 2**(bits-1) - 1,
  with q_P = max_o max|W_o| / (2**(bits-1) - 1) per layer, or per output channel
  (``scaling="channel"``: the per-channel scale goes into per-neuron thresholds);
* the threshold mantissa vth ~= theta_P / q_P (Loihi compares v > vth << 6). For reset by
  subtraction vth must be m * 2**k with m <= 255 (the weight of the recurrent synapse that
  subtracts it, see backends/sim/neurons.py FixedNeurons), otherwise a 17-bit integer;
* the bias becomes a 13-bit mantissa and a 3-bit exponent in v units (64 per a-unit; a multiple
  of 64 for subtractive reset); per-sample analog input currents share its exponent;
* decays become 12-bit: du = 4095 - round(4096 (1 - d_u)), dv = round(4096 d_v).

Max-pool selections (+-1) and sum pooling stay structural integers; average pooling becomes
sum pooling with its 1/k**2 moved into the next weights. Float fields are replaced by the
dequantised values, so the float model *is* the quantised network and ``fixed`` holds the exact
integers. The report gives per layer the scale, exponents, clipped weights, the signal-to-
quantisation-noise ratio, prediction agreement with the float network on the calibration data,
and accumulations that overflow Loihi's 24-bit current or 23-bit voltage on that data.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from snc.errors import UnsupportedOperator
from snc.ir import Graph, NeuronFixed, SumPool2d, SynapseFixed
from snc.ir.annotations import maxpool_part
from snc.ir.neurons import is_builtin, require_model
from snc.ir.projections import fan_in

from . import PassContext
from .balance import scale_outputs
from .options import option

NAME = "quantize"
VTH_MAX = 2**17 - 1
BIAS_MANT = 4095  # 13-bit signed mantissa: -4096 .. 4095
BIAS_EXP_MAX = 7  # 3-bit exponent
RECURRENT_MANT = 255  # 8-bit magnitude of the recurrent (threshold-subtracting) synapse
_WEIGHTED = ("Dense", "Conv2d", "Scale")
_STRUCTURAL_PASS = ("Flatten", "Reshape", "Transpose", "SumPool2d", "AvgPool2d", "Concat", "Add")


@dataclass
class Options:
    """Options of ``quantize`` (and ``hw``, the chip whose weight precision is the default)."""

    weight_bits: int | None = option(None, "weight mantissa bits including sign (default: the chip's)",
                                     check=lambda v: 2 <= v <= 9, expect="an integer 2..9 or None")
    scaling: str = option("layer", "one weight scale per layer, or per output channel (absorbed into per-neuron thresholds)",
                          choices=("layer", "channel"))
    rounding: str = option("nearest", "how weights round to mantissas", choices=("nearest", "zero"))
    check_samples: int = option(256, "calibration samples of the agreement check (rate limit; simulated with verify)",
                                check=lambda v: v >= 1, expect="an integer >= 1")


def _options(ctx: PassContext):
    from snc.hw import load_profile

    o = ctx.config(NAME, Options)
    profile = load_profile(ctx.options.get("hw", "loihi"))
    bits = int(o.weight_bits) if o.weight_bits is not None else int(profile["weight_bits"] if profile.kind == "neuromorphic" else 8)
    if not 2 <= bits <= 9:
        raise UnsupportedOperator(f"weight_bits must be 2..9, got {bits}")
    return bits, o.scaling, o.rounding


def _round(x: np.ndarray, rounding: str) -> np.ndarray:
    return np.trunc(x) if rounding == "zero" else np.sign(x) * np.floor(np.abs(x) + 0.5)


# --- canonical form ------------------------------------------------------------------------------
def _average_to_sum_pooling(g: Graph, ctx: PassContext) -> None:
    for name in list(g.topological_order()):
        node = g.nodes.get(name)
        if node is None or node.kind != "AvgPool2d":
            continue
        if not node.count_include_pad and any(node.padding):
            raise UnsupportedOperator(
                "average pooling with count_include_pad=False and padding divides border windows differently; "
                "it has no single fixed-point gain", node=name)
        k = node.kernel[0] * node.kernel[1]
        g.replace(name, SumPool2d(kernel=node.kernel, stride=node.stride, padding=node.padding, meta=dict(node.meta)))
        scale_outputs(g, name, 1.0 / k)
        ctx.note(NAME, f"average pool {name!r} became sum pooling; its 1/{k} went into the weights after it", node=name)


def _is_selection(node) -> bool:
    """A +-1 selection of the max-pool construction (structural routing, not a model weight)."""
    part = maxpool_part(node)
    return part is not None and part.select


def _populations(g: Graph) -> list[str]:
    return [n for n in g.topological_order() if g.nodes[n].role in ("neuron", "readout")]


def _incoming_ops(g: Graph, pop: str) -> list[str]:
    """Operators between ``pop`` and the populations feeding it (topological order)."""
    return list(fan_in(g, pop).ops)


def _free_ops(g: Graph, ops: list[str]) -> list[str]:
    return [o for o in ops if g.nodes[o].kind in _WEIGHTED and not _is_selection(g.nodes[o])]


def _check_one_weight_per_path(g: Graph, pop: str, ops: list[str]) -> None:
    free = set(_free_ops(g, ops))
    opset = set(ops)
    for o in free:
        stack = list(g.users_of(o))
        while stack:
            x = stack.pop()
            if x == pop or x not in opset:
                continue
            if x in free:
                raise UnsupportedOperator(
                    f"{o!r} and {x!r} are weighted operators in series on one projection; fixed point needs one", node=pop)
            stack.extend(g.users_of(x))


def _row_groups(node, shape) -> np.ndarray:
    """Channel (axis 0) of every element of a population, flattened."""
    n = int(np.prod(shape))
    return np.arange(n) // (n // shape[0])


# --- the pass ------------------------------------------------------------------------------------
def quantize(graph: Graph, ctx: PassContext) -> Graph:
    bits, scaling, rounding = _options(ctx)
    if not graph.is_spiking:
        raise UnsupportedOperator("quantize works on a converted (spiking) graph; run convert and balance first")
    wmax = 2 ** (bits - 1) - 1
    g = graph.copy()
    float_graph = graph
    _average_to_sum_pooling(g, ctx)
    shapes = g.infer_shapes()
    pops = _populations(g)
    incoming = {p: _incoming_ops(g, p) for p in pops}
    owner: dict[str, str] = {}
    for p in pops:
        if g.nodes[p].role == "readout" and g.nodes[p].mode == "spike_count":
            continue
        _check_one_weight_per_path(g, p, incoming[p])
        for o in _free_ops(g, incoming[p]):
            if o in owner and owner[o] != p:
                raise UnsupportedOperator(f"weighted operator {o!r} feeds both {owner[o]!r} and {p!r}; they would need one scale", node=o)
            owner[o] = p
    # Max-pool selections are +-1 already: integer weights, exponent 0.
    for name, node in g.nodes.items():
        if _is_selection(node):
            w = node.weight
            if not np.all(np.isin(w, (-1.0, 0.0, 1.0))):
                raise UnsupportedOperator("a max-pool selection is not +-1; rebalance the graph", node=name)
            g.replace(name, node.replace(fixed=SynapseFixed(weight=w.astype(np.int32), weight_exp=0, weight_bits=2)))
    static_max = _static_input_peaks(g, ctx)
    layers = {}
    for p in pops:
        node = g.nodes[p]
        model = require_model(node, p, "quantize", "quantize")
        if node.role == "readout" and node.mode == "spike_count":
            # It counts its population's spikes: integers already, no weights, no bias.
            g.replace(p, node.replace(fixed=NeuronFixed(vth=VTH_MAX + 1, bias_mant=np.zeros(shapes[p], np.int32), bias_exp=0,
                                                        du=4095, dv=0, scale=1.0)))
            continue
        shape = shapes[p]
        free = _free_ops(g, incoming[p])
        per_channel = scaling == "channel" and node.role == "neuron"
        channels = shape[0] if per_channel else 1
        # Scale per output channel (or one for the layer) from the largest weight.
        mats = {o: _weight_matrix(g.nodes[o], shapes[o], per_channel) for o in free}
        peak = np.zeros(channels)
        for o, (w, rows) in mats.items():
            np.maximum.at(peak, rows if per_channel else np.zeros(len(rows), dtype=int), np.abs(w).reshape(len(rows), -1).max(axis=1))
        theta = np.broadcast_to(np.asarray(getattr(node, "threshold", 1.0), np.float64), shape).reshape(channels, -1)[:, 0] \
            if node.role == "neuron" else np.ones(channels)
        q = np.where(peak > 0, peak / wmax, theta / 256.0)
        # Threshold mantissa, representable as the recurrent weight for subtractive reset.
        if node.role == "neuron":
            vth0 = theta / q
            # Largest threshold mantissa: 17 bits, and m * 2**k (m <= 255) for subtractive reset.
            top = VTH_MAX if node.reset != "subtract" else RECURRENT_MANT * 2 ** int(math.log2(VTH_MAX / RECURRENT_MANT))
            if np.any(vth0 > top):
                # The 17-bit threshold register cannot hold theta in steps this fine: coarser steps
                # keep the threshold exact, and the weights use fewer of their levels.
                q = np.maximum(q, theta / top)
                vth0 = theta / q
                ctx.note(NAME, f"{p!r}: threshold / weight step above 17 bits; weight step coarsened to "
                               f"{float(q.max()):.4g} (weights use fewer levels)", node=p)
            if node.reset == "subtract":
                k = np.maximum(0, np.ceil(np.log2(np.maximum(vth0, 1.0) / RECURRENT_MANT))).astype(np.int64)
                m = np.clip(np.floor(vth0 / 2.0**k + 0.5), 1, RECURRENT_MANT)
                vth = np.minimum(m * 2.0**k, (VTH_MAX // 2**k) * 2.0**k).astype(np.int64)
            else:
                vth = np.clip(np.floor(vth0 + 0.5), 1, VTH_MAX).astype(np.int64)
        # Weights.
        report_ops = []
        for o in free:
            onode = g.nodes[o]
            w, rows = mats[o]
            w = w.astype(np.float64)
            qrow = (q[rows] if per_channel else np.full(len(rows), q[0])).reshape((-1,) + (1,) * (w.ndim - 1))
            ratio = np.abs(w) / qrow
            # A positive exponent only when the largest weight would round beyond the mantissa
            # range (not for a float hair above wmax, which rounds to wmax).
            top = float(ratio.max()) if ratio.size else 0.0
            e = int(math.ceil(math.log2(top / (wmax + 0.5)))) if top >= wmax + 0.5 else 0
            wi = _round(w / (qrow * 2.0**e), rounding)
            clipped = int(np.count_nonzero((wi > wmax) | (wi < -wmax - 1)))
            wi = np.clip(wi, -wmax - 1, wmax)
            deq = wi * qrow * 2.0**e
            noise = float(np.sum((w - deq) ** 2))
            signal = float(np.sum(w**2))
            sqnr = 10 * math.log10(signal / noise) if noise > 0 else float("inf")
            if onode.kind == "Scale":
                gain_shape = shapes[o] if per_channel else onode.scale.shape
                fx = SynapseFixed(weight=wi.astype(np.int32).reshape(gain_shape), weight_exp=e, weight_bits=bits)
                g.replace(o, onode.replace(scale=deq.astype(np.float32).reshape(gain_shape), fixed=fx))
            else:
                fx = SynapseFixed(weight=wi.astype(np.int32), weight_exp=e, weight_bits=bits)
                g.replace(o, onode.replace(weight=deq.astype(np.float32), fixed=fx))
            report_ops.append({"op": o, "exponent": e, "clipped": clipped, "sqnr_db": round(sqnr, 2)})
        # Bias (v units: 64 per a-unit), sharing its exponent with per-sample analog input.
        size = int(np.prod(shape))
        q_neuron = np.repeat(q, size // channels) if per_channel else np.full(size, q[0])
        b = np.zeros(size) if node.bias is None else node.bias.reshape(-1).astype(np.float64)
        b_v = 64.0 * b / q_neuron
        peak_v = np.abs(b_v).max(initial=0.0) + 64.0 * static_max.get(p, 0.0) / q_neuron.min()
        min_exp = 6 if node.role == "neuron" and node.reset == "subtract" else 0
        bias_exp = min_exp
        while bias_exp < BIAS_EXP_MAX + (6 if min_exp else 0) and peak_v / 2.0**bias_exp > BIAS_MANT:
            bias_exp += 1
        mant = _round(b_v / 2.0**bias_exp, rounding)
        bias_clipped = int(np.count_nonzero(np.abs(mant) > BIAS_MANT))
        mant = np.clip(mant, -BIAS_MANT - 1, BIAS_MANT).astype(np.int32)
        b_deq = (mant * 2.0**bias_exp * q_neuron / 64.0).reshape(shape).astype(np.float32)
        scale_arr = np.float64(q[0]) if not per_channel else q_neuron.reshape(shape).astype(np.float64)
        if node.role == "neuron":
            du, dv = _decays(node, p)
            vth_stored = int(vth[0]) if not per_channel else vth[_row_groups(node, shape)].reshape(shape).astype(np.int64)
            fx = NeuronFixed(vth=vth_stored, bias_mant=mant.reshape(shape), bias_exp=bias_exp, du=du, dv=dv,
                             scale=float(scale_arr) if not per_channel else scale_arr)
            th_deq = (vth * q).astype(np.float32)
            threshold = float(th_deq[0]) if not per_channel else th_deq.reshape((-1,) + (1,) * (len(shape) - 1))
            new = node.replace(threshold=threshold, bias=b_deq if np.any(b_deq) else None, fixed=fx)
            if model is not None and not is_builtin(node):
                # A declared model adds its own integer parameters (ir/models.py): one unit of
                # synaptic input is worth ``step`` per neuron, the threshold is vth << 6 in v.
                new = model.quantize(new, p, step=q_neuron.reshape(shape), vth=vth_stored)
            g.replace(p, new)
        else:
            du, dv = _decays(node, p)
            fx = NeuronFixed(vth=VTH_MAX + 1, bias_mant=mant.reshape(shape), bias_exp=bias_exp, du=du, dv=dv, scale=float(q[0]))
            g.replace(p, node.replace(bias=b_deq if np.any(b_deq) else None, fixed=fx))
        layers[p] = {
            "scale": float(q.max()) if per_channel else float(q[0]),
            "vth": int(vth.max()) if node.role == "neuron" else None,
            "bias_exp": bias_exp,
            "bias_clipped": bias_clipped,
            "ops": report_ops,
        }
    g.meta["quantized"] = {"weight_bits": bits, "scaling": scaling, "rounding": rounding}
    g.validate()
    for p, info in layers.items():
        ops = ", ".join(f"{o['op']}: exp {o['exponent']}, {o['clipped']} clipped, SQNR {o['sqnr_db']} dB" for o in info["ops"])
        ctx.note(NAME, f"{p!r}: scale {info['scale']:.4g} per LSB, vth {info['vth']}, bias exp {info['bias_exp']}; {ops}",
                 node=p, layer=info)
    _guarantee_fixed(g)
    _check_on_calibration(float_graph, g, ctx)
    return g


def _weight_matrix(node, out_shape, per_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    """The operator's weights with one row per output channel group, and each row's channel
    (axis 0 of the output). A gain (Scale) is elementwise: in channel mode it is expanded to
    one value per output element."""
    if node.kind == "Scale":
        if per_channel:
            full = np.broadcast_to(node.scale, out_shape).reshape(-1).astype(np.float32)
            n = full.size
            return full, np.arange(n) // (n // out_shape[0])
        flat = node.scale.reshape(-1)
        return flat, np.zeros(flat.size, dtype=int)
    w = node.weight
    return w, np.arange(w.shape[0])


def _decays(node, name) -> tuple[int, int]:
    """Loihi's du, dv of a built-in population with decays (LIF, a leaky readout); IF: 4095, 0
    (a declared model sets its own integer decays in its ``quantize``)."""
    if not hasattr(node, "decay_voltage") or (node.role == "neuron" and not is_builtin(node)):
        return 4095, 0
    if getattr(node, "reset", None) == "subtract" and (node.decay_voltage != 0.0 or node.decay_current != 1.0):
        raise UnsupportedOperator("a leaky neuron with reset by subtraction has no Loihi form", node=name)
    du = int(np.clip(4095 - round(4096 * (1.0 - node.decay_current)), 0, 4095))
    dv = int(np.clip(round(4096 * node.decay_voltage), 0, 4095))
    return du, dv


def _static_input_peaks(g: Graph, ctx: PassContext) -> dict[str, float]:
    """Largest per-neuron current that direct (analog) inputs bring each population, on the
    calibration data (it becomes part of the per-sample bias): the operators between the input
    and the populations whose only source is a direct input, evaluated on the first 256 samples."""
    if ctx.calibration is None:
        return {}
    direct = {n for n in g.input_names if g.nodes[n].encoding == "direct"}
    fed: dict[str, list[str]] = {}
    for p in _populations(g):
        ops = _incoming_ops(g, p)
        sources = {i for o in ops for i in g.inputs_of(o) if g.nodes[i].role in ("input", "neuron")}
        sources |= {i for i in g.inputs_of(p) if g.nodes[i].role in ("input", "neuron")}
        if sources & direct:
            fed[p] = [i for i in g.inputs_of(p)]
    if not fed:
        return {}
    import torch

    from snc.backends import dense_ops

    x = torch.from_numpy(np.ascontiguousarray(ctx.calibration[:256], dtype=np.float32))
    shapes = g.infer_shapes()
    peaks = {}
    with torch.inference_mode():
        for p, ins in fed.items():
            # Only the operators between the input and p (usually one convolution); spiking
            # sources contribute nothing to the bias.
            values = {n: x for n in direct}
            for op in _incoming_ops(g, p):
                xs = [values[i] if i in values else torch.zeros((len(x),) + tuple(shapes[i])) for i in g.inputs_of(op)]
                values[op] = dense_ops.apply(g.nodes[op], xs)
            total = sum(values[i].reshape(len(x), -1).double() for i in ins if i in values)
            peaks[p] = float(total.abs().max()) if total.numel() else 0.0
    return peaks


def _guarantee_fixed(g: Graph) -> None:
    """The pass's contract: every population (the readout included) and every weighted operator
    has fixed-point parameters."""
    for name, node in g.nodes.items():
        weighted = node.kind in ("Dense", "Conv2d") or (node.kind == "Scale" and not np.all(node.scale == np.round(node.scale)))
        if (node.role in ("neuron", "readout") or weighted) and getattr(node, "fixed", None) is None:
            raise UnsupportedOperator("quantize could not give this node fixed-point parameters (please report)", node=name)


def _check_on_calibration(float_graph: Graph, g: Graph, ctx: PassContext) -> None:
    """Prediction agreement of the fixed-point network with the float one on calibration data:
    in the rate limit (two analog passes, no simulation) by default; with ``ctx.verify`` by
    simulating both for T steps, which also counts fixed-point overflows."""
    if ctx.calibration is None:
        ctx.note(NAME, "no calibration data: accuracy and overflow not checked")
        return
    o = ctx.config(NAME, Options)
    x = np.asarray(ctx.calibration[: o.check_samples])
    labels = ctx.options.get("labels")
    t = int(ctx.timesteps)
    if ctx.verify:
        before = ctx.simulate(float_graph, x, timesteps=t, purpose="quantize check (float)").predictions
        result = ctx.simulate(g, x, timesteps=t, arithmetic="fixed", purpose="quantize check (fixed point)")
        after, how, overflow = result.predictions, f"simulated, T={t}", result.overflow
    else:
        from snc.backends import analog

        before = analog.predict(float_graph, x)
        after = analog.predict(g, x)
        how, overflow = "rate limit; --verify simulates", {}
    agree = float(np.mean(before == after))
    msg = f"fixed-point predictions agree with the float network on {100 * agree:.1f}% of {len(x)} calibration samples ({how})"
    data = {"agreement": agree}
    if labels is not None:
        y = np.asarray(labels)[: len(x)]
        data["accuracy_before"] = float(np.mean(before == y))
        data["accuracy_after"] = float(np.mean(after == y))
        msg += f"; accuracy {100 * data['accuracy_before']:.2f}% -> {100 * data['accuracy_after']:.2f}%"
    ctx.note(NAME, msg, **data)
    for pop, counts in overflow.items():
        ctx.note(NAME, f"{pop!r} overflows on the calibration data: {counts['u_wraps']} current wraps (24 bit), "
                       f"{counts['v_saturations']} voltage saturations (23 bit) - results will differ from float", node=pop, overflow=counts)
    g.meta["quantized"]["calibration_agreement"] = agree
