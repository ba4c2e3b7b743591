"""snc's fixed-point simulator against Lava's bit-accurate CPU models, on the same spikes.

Network: 784-512-256-10 IF neurons (Lava LIF with du=4095, dv=0, reset to zero), random int8
weights, 1000 steps, input spikes Bernoulli(0.1). Lava (lava-nc 0.10, Loihi2SimCfg fixed_pt,
in .venv-lava or $SNC_LAVA_PYTHON) runs one sample: its wall time covers building the process
graph, running and reading the spikes back (Extractor). snc runs the same sample, and a batch
of 256, in fixed point with one-step synaptic delay; the script checks that the single sample's
spikes are identical in every population and step, and prints sample-steps per second and the
ratios. Targets: single sample >= 20x Lava, batch >= 300x Lava per sample-step.

    python benchmarks/vs_lava.py [--steps 1000] [--batch 256]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import snc.ir as ir
from snc.backends.lava import export, run_exported
from snc.backends.sim import simulate

SIZES = (784, 512, 256, 10)
VTH = (80, 120, 120)  # threshold mantissas (v > vth << 6): moderate hidden activity


def network(seed: int = 0) -> ir.Graph:
    rng = np.random.default_rng(seed)
    g = ir.Graph("vs_lava")
    g.add("in", ir.Input(shape=(SIZES[0],), encoding="spikes"))
    prev = "in"
    for k, (n_in, n_out) in enumerate(zip(SIZES[:-1], SIZES[1:]), start=1):
        w = rng.integers(-128, 128, size=(n_out, n_in))
        g.add(f"fc{k}", ir.Dense(weight=w.astype(np.float32), fixed=ir.SynapseFixed(weight=w.astype(np.int32), weight_exp=0)), [prev])
        fx = ir.NeuronFixed(vth=VTH[k - 1], bias_mant=np.zeros(n_out, np.int32), bias_exp=0, du=4095, dv=0, scale=1.0)
        g.add(f"lif{k}", ir.IF(shape=(n_out,), threshold=float(VTH[k - 1]), reset="zero", fixed=fx), [f"fc{k}"])
        prev = f"lif{k}"
    eye = np.eye(SIZES[-1], dtype=np.int32)
    g.add("sum", ir.Dense(weight=eye.astype(np.float32), fixed=ir.SynapseFixed(weight=eye, weight_exp=0)), [prev])
    g.add("out", ir.Readout(shape=(SIZES[-1],), fixed=ir.NeuronFixed(vth=2**17, bias_mant=np.zeros(10, np.int32), bias_exp=0, scale=1.0)), ["sum"])
    g.outputs = ["out"]
    return g


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(2)
    g = network()
    rng = np.random.default_rng(1)
    spikes = rng.random((args.batch, args.steps, SIZES[0]), dtype=np.float32) < 0.1
    with tempfile.TemporaryDirectory() as tmp:
        folder = export(g, Path(tmp) / "net", timesteps=args.steps)
        run = run_exported(folder, spikes[:1].astype(np.uint8), args.steps, "fixed", timeout=1800)
    lava_s = float(run.sample_seconds[0])
    t = time.perf_counter()
    one = simulate(g, spikes[:1], timesteps=args.steps, arithmetic="fixed", timing="delay", rasters=[0])
    single_s = time.perf_counter() - t
    same = all(np.array_equal(run.spikes[f"lif{k}"][0], one.populations[f"lif{k}"].rasters[0]) for k in (1, 2, 3))
    t = time.perf_counter()
    many = simulate(g, spikes, timesteps=args.steps, batch_size=args.batch, arithmetic="fixed", timing="delay")
    batch_s = time.perf_counter() - t
    same_batch0 = all(int(many.populations[f"lif{k}"].spikes[0].sum()) == int(one.populations[f"lif{k}"].spikes[0].sum()) for k in (1, 2, 3))
    counts = [int(run.spikes[f"lif{k}"][0].sum()) for k in (1, 2, 3)]
    lava_rate = args.steps / lava_s
    single_rate = args.steps / single_s
    batch_rate = args.batch * args.steps / batch_s
    print(f"network {'-'.join(map(str, SIZES))}, {args.steps} steps, input rate 0.1, int8 weights, fixed point, one-step delay")
    print(f"Lava spike counts {counts}; identical spikes in every population and step: {'yes' if same else 'NO'}")
    print()
    print("| run | wall time (s) | sample-steps/s | vs Lava | target |")
    print("|---|---|---|---|---|")
    print(f"| Lava 0.10 fixed_pt, 1 sample (build + run + read-back) | {lava_s:.2f} | {lava_rate:,.0f} | 1x | |")
    print(f"| snc fixed point, 1 sample | {single_s:.3f} | {single_rate:,.0f} | {single_rate / lava_rate:.0f}x | >= 20x |")
    print(f"| snc fixed point, batch of {args.batch} | {batch_s:.2f} | {batch_rate:,.0f} | {batch_rate / lava_rate:.0f}x | >= 300x |")
    print(f"\n(Lava subprocess total incl. interpreter start and imports: {run.seconds:.1f} s)")
    if not (same and same_batch0):
        print("ERROR: spikes differ", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
