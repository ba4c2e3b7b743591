"""Simulator throughput against two baselines measured in the same run, on the same spikes.

Network: 784-512-256-10 IF neurons (reset by subtraction, no leak), random int8-range weights,
1000 steps, input spikes Bernoulli(0.1). Reports sample-steps per second for one sample and for
a batch of 256, for

* snc      - snc.backends.sim.simulate (float32, layer-synchronous),
* numpy    - a plain numpy loop, one dense product per layer and step,
* snnTorch - snn.Leaky(beta=1, reset_mechanism="subtract") behind nn.Linear, torch with 2 threads,

checks that all three produce the same spike counts in every layer, and prints the ratios and
the synaptic events per second.

    python benchmarks/sim_throughput.py [--steps 1000] [--batch 256] [--repeats 2]
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

import snc.ir as ir
from snc.backends.sim import simulate

SIZES = (784, 512, 256, 10)
THRESHOLDS = (600.0, 900.0, 900.0)  # chosen for moderate hidden activity (printed below)


def network(seed: int = 0, float_weights: bool = False):
    rng = np.random.default_rng(seed)
    weights = [rng.integers(-128, 128, size=(o, i)).astype(np.float32) for i, o in zip(SIZES[:-1], SIZES[1:])]
    if float_weights:  # not small integers: no exact int8 kernel, float32 GEMMs or gathers
        weights = [(w + rng.uniform(-0.5, 0.5, size=w.shape)).astype(np.float32) for w in weights]
    g = ir.Graph("bench")
    g.add("in", ir.Input(shape=(SIZES[0],), encoding="spikes"))
    prev = "in"
    for k, (w, th) in enumerate(zip(weights, THRESHOLDS), start=1):
        g.add(f"fc{k}", ir.Dense(weight=w), [prev])
        g.add(f"lif{k}", ir.IF(shape=(w.shape[0],), threshold=th, reset="subtract"), [f"fc{k}"])
        prev = f"lif{k}"
    g.add("sum", ir.Dense(weight=np.eye(SIZES[-1], dtype=np.float32)), [prev])
    g.add("out", ir.Readout(shape=(SIZES[-1],)), ["sum"])
    g.outputs = ["out"]
    return g, weights


def input_spikes(batch: int, steps: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.random((batch, steps, SIZES[0]), dtype=np.float32) < 0.1


def run_snc(graph, spikes):
    r = simulate(graph, spikes, timesteps=spikes.shape[1], batch_size=len(spikes))
    return [int(r.populations[f"lif{k}"].spikes.sum()) for k in (1, 2, 3)], r


def run_numpy(weights, spikes):
    b, steps, _ = spikes.shape
    wt = [np.ascontiguousarray(w.T) for w in weights]
    v = [np.zeros((b, w.shape[0]), np.float32) for w in weights]
    counts = [0, 0, 0]
    for t in range(steps):
        x = spikes[:, t].astype(np.float32)
        for k in range(3):
            v[k] += x @ wt[k]
            s = v[k] > THRESHOLDS[k]
            v[k] -= s * np.float32(THRESHOLDS[k])
            counts[k] += int(s.sum())
            x = s.astype(np.float32)
    return counts


def run_snntorch(weights, spikes):
    import snntorch as snn

    layers = []
    for w in weights:
        fc = torch.nn.Linear(w.shape[1], w.shape[0], bias=False)
        fc.weight.data = torch.from_numpy(w)
        layers.append(fc)
    neurons = [snn.Leaky(beta=1.0, threshold=th, reset_mechanism="subtract") for th in THRESHOLDS]
    x_all = torch.from_numpy(spikes.astype(np.float32))
    counts = [0, 0, 0]
    with torch.no_grad():
        mems = [n.init_leaky() for n in neurons]
        for t in range(spikes.shape[1]):
            x = x_all[:, t]
            for k in range(3):
                spk, mems[k] = neurons[k](layers[k](x), mems[k])
                counts[k] += int(spk.sum())
                x = spk
    return counts


def timed(fn, repeats):
    best = float("inf")
    out = None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--float-weights", action="store_true",
                    help="weights that are not small integers (float32 kernels; spikes compared with a tolerance)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    graph, weights = network(float_weights=args.float_weights)
    rows = []
    ok = True
    for batch in (1, args.batch):
        spikes = input_spikes(batch, args.steps)
        sample_steps = batch * args.steps
        t_snc, (c_snc, res) = timed(lambda: run_snc(graph, spikes), args.repeats)
        t_np, c_np = timed(lambda: run_numpy(weights, spikes), 1 if batch > 1 else args.repeats)
        t_st, c_st = timed(lambda: run_snntorch(weights, spikes), args.repeats)
        if args.float_weights:  # summation order differs between implementations: allow threshold ties
            same = all(abs(a - b) <= 1e-3 * max(1, b) and abs(a - c) <= 1e-3 * max(1, c) for a, b, c in zip(c_snc, c_np, c_st))
        else:
            same = c_snc == c_np == c_st
        ok &= same
        synops = sum(p.synops.sum() for p in res.populations.values())
        rates = [c / (batch * args.steps * n) for c, n in zip(c_snc, SIZES[1:])]
        rows.append((batch, sample_steps / t_snc, sample_steps / t_np, sample_steps / t_st, synops / t_snc, same, rates, c_snc))
    kind = "float weights (int8 range + U(-0.5, 0.5))" if args.float_weights else "int8-range integer weights"
    print(f"network {'-'.join(map(str, SIZES))} IF, {args.steps} steps, input rate 0.1, {kind}, torch threads 2")
    print()
    print("| batch | snc sample-steps/s | numpy | snnTorch | snc / numpy | snc / snnTorch | snc synaptic events/s | same spikes |")
    print("|---|---|---|---|---|---|---|---|")
    for batch, s, n, t, ev, same, rates, counts in rows:
        print(f"| {batch} | {s:,.0f} | {n:,.0f} | {t:,.0f} | {s / n:.1f}x | {s / t:.2f}x | {ev:.3g} | {'yes' if same else 'NO'} |")
    print()
    for batch, *_, rates, counts in rows:
        print(f"batch {batch}: hidden rates {', '.join(f'{r:.3f}' for r in rates)}; spike counts {counts}")
    print("(same spikes: identical spike counts in every layer" + (", within 0.1 %)" if args.float_weights else ")"))
    if not ok:
        print("ERROR: the implementations disagree on spike counts", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
