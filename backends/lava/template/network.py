"""Builds the Lava process graph of an snc-exported network from network.json and params.npz.

This file is the same for every network: the network is data. Nothing from the model (layer
names included) is ever turned into code; names only appear as labels in the output file.

Needs lava-nc (0.10) and numpy/scipy, nothing from snc.

Populations are Lava LIF processes. A population with reset by subtraction (converted ANNs) is
the circuit snc's fixed-point model defines: a LIF whose current integrates (du = -1, no decay)
and whose voltage only reads it (dv = 4096), its bias entering as input through a constant
RingBuffer, plus a Sparse self-connection of weight -vth that subtracts the threshold one step
after each spike. Connections are Sparse (or Dense) processes carrying the composed synaptic
matrix of each source -> target pair (pooling, flatten, concatenation and residual sums are all
inside those matrices; several connections into one a_in are summed by Lava). In fixed point,
weights are sent doubled with weight_exp - 1, so that Lava's clipping and mixed-sign LSB
truncation leave them exact.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp

HERE = Path(__file__).resolve().parent


def load(folder: Path = HERE):
    spec = json.loads((Path(folder) / "network.json").read_text())
    if spec.get("format") != "snc-lava" or spec.get("version") != 1:
        raise ValueError("network.json is not an snc-lava version 1 network")
    with np.load(Path(folder) / "params.npz", allow_pickle=False) as npz:
        params = {k: npz[k] for k in npz.files}
    return spec, params


def csr(params: dict, key: str, dtype) -> sp.csr_matrix:
    shape = tuple(int(v) for v in params[key + "_shape"])
    return sp.csr_matrix((params[key + "_data"].astype(dtype), params[key + "_indices"], params[key + "_indptr"]), shape=shape)


def round_half_away(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def max_pool(values: np.ndarray, pool: dict) -> np.ndarray:
    """Window maxima of a (C, H, W) map given flat (the host's max pool; padding never wins)."""
    c, h, w = pool["in_shape"]
    (kh, kw), (sh, sw), (dh, dw) = pool["kernel"], pool["stride"], pool["dilation"]
    top, left, bottom, right = pool["padding"]
    x = np.full((c, h + top + bottom, w + left + right), -np.inf)
    x[:, top:top + h, left:left + w] = values.reshape(c, h, w)
    ho = (x.shape[1] - dh * (kh - 1) - 1) // sh + 1
    wo = (x.shape[2] - dw * (kw - 1) - 1) // sw + 1
    out = np.full((c, ho, wo), -np.inf)
    for m in range(kh):
        for n in range(kw):
            tap = x[:, m * dh: m * dh + sh * (ho - 1) + 1: sh, n * dw: n * dw + sw * (wo - 1) + 1: sw]
            np.maximum(out, tap, out=out)
    return out.reshape(-1)


def analog_bias(spec: dict, params: dict, sample: np.ndarray, cfg: str) -> dict[int, np.ndarray]:
    """Per-population constant input from a direct (analog) sample, as the host computes it once
    per sample: fixed point -> v units (multiple of 2**bias_exp); float -> float current."""
    x = np.asarray(sample, dtype=np.float64).reshape(-1)
    out: dict[int, np.ndarray] = {}
    for item in spec["analog"]:
        i = item["target"]
        current = csr(params, f"analog{item['index']}", np.float64) @ x
        if item.get("max_pool"):
            current = max_pool(current, item["max_pool"])
        out[i] = out.get(i, 0.0) + current
    if cfg == "float":
        return out
    fixed = {}
    for i, current in out.items():
        lsb = params[f"pop{i}_scale"].astype(np.float64).reshape(-1) / 64.0
        exp = int(params[f"pop{i}_bias_exp"])
        mant = round_half_away(current / (lsb * 2.0**exp)).astype(np.int64)
        fixed[i] = (mant << exp) if exp >= 0 else (mant >> -exp)
    return fixed


def _reset_circuit(lif, recurrent, constant: np.ndarray, procs: list) -> None:
    """Reset by subtraction, which Lava's LIF lacks: the neuron's own spike comes back through
    ``recurrent`` (-threshold on the diagonal) one step later, and the bias enters through the
    synaptic input as a constant per-step current from a RingBuffer (docs/lava.md)."""
    from lava.proc.io.source import RingBuffer

    lif.s_out.connect(recurrent.s_in)
    recurrent.a_out.connect(lif.a_in)
    procs.append(recurrent)
    if np.any(constant):
        src = RingBuffer(data=constant.reshape(-1, 1))
        src.s_out.connect(lif.a_in)
        procs.append(src)


def atrlif(params: dict, i: int, n: int, bias_mant, bias_exp):
    """Lava's adaptive-threshold LIF with the population's parameters (the same fractions for
    the decays in float and fixed point; the threshold and its step in the chosen arithmetic)."""
    from lava.proc.atrlif.process import ATRLIF

    kw = {k: float(params[f"pop{i}_{k}"]) for k in ("delta_i", "delta_v", "delta_theta", "delta_r")}
    theta_0, theta_step = params[f"pop{i}_theta_0"], params[f"pop{i}_theta_step"]
    if np.issubdtype(np.asarray(theta_0).dtype, np.integer):
        theta_0, theta_step = int(theta_0), int(theta_step)
    else:
        theta_0, theta_step = float(theta_0), float(theta_step)
    return ATRLIF(shape=(n,), theta=theta_0, theta_0=theta_0, theta_step=theta_step, bias_mant=bias_mant,
                  bias_exp=bias_exp, **kw)


def build(spec: dict, params: dict, sample: np.ndarray, steps: int, cfg: str):
    """Processes for one sample. Returns (processes, extractors {population index: Extractor},
    readout LIF or None)."""
    from lava.proc.dense.process import Dense
    from lava.proc.io.extractor import Extractor
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF
    from lava.proc.sparse.process import Sparse

    fixed = cfg != "float"
    extra = analog_bias(spec, params, sample, cfg) if spec["analog"] else {}
    procs = []
    lifs = {}
    for pop in spec["populations"]:
        i, n = pop["index"], pop["size"]
        extra_i = extra.get(i)
        if fixed:
            vth = int(params[f"pop{i}_vth"])
            mant = params[f"pop{i}_bias_mant"].astype(np.int64).reshape(-1)
            exp = int(params[f"pop{i}_bias_exp"])
            if pop["reset"] == "subtract":
                bias_v = (mant << exp) if exp >= 0 else (mant >> -exp)
                if extra_i is not None:
                    bias_v = bias_v + extra_i
                    if not any(c["target"] == i for c in spec["connections"]):
                        # Constant drive only: <= 0 never fires, so the host programs max(drive, 0)
                        # (exact; the integrating current cannot wrap downwards).
                        bias_v = np.maximum(bias_v, 0)
                lif = LIF(shape=(n,), du=-1, dv=4096, vth=vth, bias_mant=0, bias_exp=0)
                const = (bias_v >> 6).astype(np.int32)
                m, k = int(params[f"pop{i}_recurrent_mant"]), int(params[f"pop{i}_recurrent_exp"])
                _reset_circuit(lif, Sparse(weights=sp.csr_matrix(-m * sp.identity(n, dtype=np.int32)), weight_exp=k),
                               const, procs)
            else:
                if extra_i is not None:  # the analog input shares the bias exponent
                    mant = mant + (extra_i >> exp if exp >= 0 else extra_i << -exp)
                if pop.get("process") == "ATRLIF":
                    lif = atrlif(params, i, n, mant, exp)
                else:
                    lif = LIF(shape=(n,), du=int(params[f"pop{i}_du"]), dv=int(params[f"pop{i}_dv"]), vth=vth,
                              bias_mant=mant, bias_exp=exp)
        else:
            th = float(params[f"pop{i}_float_vth"])
            bias = params[f"pop{i}_float_bias"].astype(np.float64).reshape(-1)
            if extra_i is not None:
                bias = bias + extra_i
            if pop.get("process") == "ATRLIF":
                lif = atrlif(params, i, n, bias, 0)
            elif pop["reset"] == "subtract":
                lif = LIF(shape=(n,), du=0.0, dv=1.0, vth=th, bias_mant=0.0)
                _reset_circuit(lif, Sparse(weights=sp.csr_matrix(-th * sp.identity(n))), bias, procs)
            else:
                lif = LIF(shape=(n,), du=float(params[f"pop{i}_float_du"]), dv=float(params[f"pop{i}_float_dv"]),
                          vth=th, bias_mant=bias)
        lifs[i] = lif
        procs.append(lif)
    source = None
    if spec["input"]["encoding"] != "analog":
        spikes = np.asarray(sample).reshape(np.asarray(sample).shape[0], -1)[:steps].T  # (n_in, steps)
        source = RingBuffer(data=spikes.astype(np.int32 if fixed else np.float64))
        procs.append(source)
    from lava.utils.weightutils import SignMode

    for conn in spec["connections"]:
        j = conn["index"]
        if fixed:
            w = csr(params, f"conn{j}", np.int64)
            exp = int(params[f"conn{j}_exp"])
            # Mixed sign mode always: the clip range is [-256, 255] whatever signs occur.
            if int(params[f"conn{j}_bits"]) >= 9:
                kw = dict(weight_exp=exp, num_weight_bits=9, sign_mode=SignMode.MIXED)
            else:  # doubled: Lava's 8-bit clip and LSB truncation leave even weights exact
                w = 2 * w
                kw = dict(weight_exp=exp - 1, sign_mode=SignMode.MIXED)
            w = w.astype(np.int32)
        else:
            w = csr(params, f"conn{j}_float", np.float64)
            kw = {}
        delay = int(conn.get("delay", 0))
        if delay:  # d more steps than Dense's one (snc's Delay operators on the path)
            from lava.proc.dense.process import DelayDense

            proc = DelayDense(weights=w.toarray(), delays=np.full(w.shape, delay, dtype=int), **kw)  # Lava checks dtype == int
        else:
            proc = Dense(weights=w.toarray(), **kw) if conn["format"] == "dense" else Sparse(weights=w, **kw)
        src = source if conn["source"] < 0 else lifs[conn["source"]]
        src.s_out.connect(proc.s_in)
        proc.a_out.connect(lifs[conn["target"]].a_in)
        procs.append(proc)
    extractors = {}
    for pop in spec["populations"]:
        if pop["role"] == "neuron":
            ext = Extractor(shape=(pop["size"],), buffer_size=steps)
            lifs[pop["index"]].s_out.connect(ext.in_port)
            extractors[pop["index"]] = ext
            procs.append(ext)
    readout = spec.get("readout")
    readout_lif = lifs[readout["population"]] if readout and readout["mode"] == "membrane" else None
    return procs, lifs, extractors, readout_lif


def run_config(cfg: str):
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel

    if cfg == "hw":
        # Hook for Loihi 2 hardware: needs Intel's lava-loihi extension (INRC members).
        try:
            from lava.magma.core.run_configs import Loihi2HwCfg
        except ImportError as exc:  # pragma: no cover - no hardware here
            raise SystemExit(f"--cfg hw needs lava-loihi (Loihi2HwCfg): {exc}")
        return Loihi2HwCfg()
    tag = "fixed_pt" if cfg == "fixed" else "floating_pt"
    return Loihi2SimCfg(select_tag=tag, exception_proc_model_map={Extractor: PyLoihiExtractorModel})


def run_sample(spec: dict, params: dict, sample: np.ndarray, steps: int, cfg: str) -> tuple[dict, np.ndarray | None]:
    """Run one sample; always stops the Lava runtime. Returns ({population index: (steps, n)
    spikes}, readout membrane potential or None)."""
    from lava.magma.core.run_conditions import RunSteps

    procs, lifs, extractors, readout_lif = build(spec, params, sample, steps, cfg)
    anchor = next(iter(lifs.values()))
    try:
        anchor.run(condition=RunSteps(num_steps=steps), run_cfg=run_config(cfg))
        spikes = {i: np.array([ext.receive() for _ in range(steps)]).astype(bool) for i, ext in extractors.items()}
        v = None if readout_lif is None else np.asarray(readout_lif.v.get(), dtype=np.float64)
    finally:
        anchor.stop()
    return spikes, v
