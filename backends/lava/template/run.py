"""Run an snc-exported network in Lava, one sample after another.

    python run.py --steps 100 --input x.npy --out spikes.npz [--cfg fixed|float|hw] [--samples N]

--input: an .npy array. For a spike-encoded input: (N, T, *input shape) of 0/1 (T >= steps);
for a direct (analog) input: (N, *input shape), the host turns each sample into bias currents.
--cfg fixed (default): Loihi2SimCfg(select_tag="fixed_pt"), bit-accurate CPU models; float:
"floating_pt"; hw: Loihi2HwCfg, which needs Intel's lava-loihi (a hook, untested here).
--out: an .npz with, per population k (see "labels"), "spikes_k" (N, steps, n) bool, and
"readout_v" (N, n_out), the readout's membrane potential after the last step (membrane
readouts), or an empty array, and "seconds" (N,), the wall time of each sample (building the
processes, running, reading the spikes back).

Needs lava-nc 0.10 and numpy only; snc is not required.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import network  # noqa: E402  (the builder next to this file)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Run an snc-exported network in Lava.")
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--input", required=True, help=".npy samples")
    ap.add_argument("--out", required=True, help="output .npz")
    ap.add_argument("--cfg", choices=["fixed", "float", "hw"], default="fixed")
    ap.add_argument("--samples", type=int, default=None, help="run only the first N samples")
    args = ap.parse_args(argv)
    spec, params = network.load(HERE)
    if args.cfg != "float" and not spec.get("fixed_point"):
        print("this network was exported without fixed-point parameters (quantise it first); use --cfg float", file=sys.stderr)
        return 2
    x = np.load(args.input, allow_pickle=False)
    if args.samples is not None:
        x = x[: args.samples]
    if spec["input"]["encoding"] != "analog" and (x.ndim < 2 or x.shape[1] < args.steps):
        print(f"spike input must be (N, T >= {args.steps}, ...), got {x.shape}", file=sys.stderr)
        return 2
    pops = spec["populations"]
    spikes = {p["index"]: np.zeros((len(x), args.steps, p["size"]), dtype=bool) for p in pops if p["role"] == "neuron"}
    readout = spec.get("readout")
    out_size = next((p["size"] for p in pops if readout and p["index"] == readout["population"]), 0)
    readout_v = np.zeros((len(x), out_size)) if readout and readout["mode"] == "membrane" else np.zeros((0,))
    seconds = np.zeros(len(x))
    for n, sample in enumerate(x):
        t0 = time.perf_counter()
        got, v = network.run_sample(spec, params, sample, args.steps, args.cfg)
        seconds[n] = time.perf_counter() - t0  # build, run and read back one sample
        for i, s in got.items():
            spikes[i][n] = s
        if v is not None:
            readout_v[n] = v
        print(f"sample {n + 1}/{len(x)}", file=sys.stderr, flush=True)
    arrays = {f"spikes_{i}": s for i, s in spikes.items()}
    arrays["readout_v"] = readout_v
    arrays["seconds"] = seconds
    arrays["labels"] = np.array(json.dumps({str(p["index"]): p["name"] for p in pops}))
    out = Path(args.out)
    fd, tmp = tempfile.mkstemp(prefix=".run.", suffix=".npz", dir=str(out.parent.resolve()))
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
