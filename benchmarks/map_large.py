"""Mapping a 1 M-neuron, 100 M-synapse network onto cores: time and memory of ``map_to_cores``.

Network ``chain`` (the target): 10,000 fully connected layers of 100 neurons (9,999 IF
populations and a 100-neuron Readout), each fed by a 100 x 100 float32 weight matrix without
zeros, so stored weights = synapses: 1,000,000 neurons, 100,000,000 synapses, 400 MB of weights.
At a given synapse count, a chain of small dense layers is the worst case for the mapper's
per-layer and per-block work (10,000 layers, 10,000 blocks and cores, 79 chips to place), while
every synapse is a stored weight that must be counted.

Network ``wide`` (a second look, same 100 M synapses): 10 layers of 3,162 neurons, dense
3,162 x 3,162 weights. Few neurons, but every layer is split into ~140 cores by synaptic memory
and input axons, so the splitting and fan-out search does real work on big matrices.

Targets (this machine, 2 cores): mapping in under 60 s, and peak resident memory growth during
mapping under 3 x the weight bytes (the pass copies the graph it returns: 1 x is expected).
Memory: /proc/self/clear_refs resets the peak (VmHWM) before mapping where the kernel allows,
and a thread samples VmRSS every 5 ms; growth = max(VmHWM, sampled peak) - VmRSS before.
Each (network, profile) runs in a fresh process: memory one run frees would hide the next
run's growth.

    python benchmarks/map_large.py [--shapes chain wide] [--profiles loihi loihi2]
"""
from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import threading
import time

import numpy as np

import snc.ir as ir
from snc.passes import PassContext
from snc.passes.map_to_cores import map_to_cores

TIME_LIMIT_S = 60.0
MEMORY_LIMIT_RATIO = 3.0


def chain(layers: int, width: int, seed: int = 0) -> tuple[ir.Graph, int, int, int]:
    """Input -> (Dense -> IF) x (layers - 1) -> Dense -> Readout; float32 weights without zeros,
    generated layer by layer. Returns the graph, neurons, synapses and weight bytes."""
    rng = np.random.default_rng(seed)
    g = ir.Graph("chain")
    g.add("x", ir.Input(shape=(width,), encoding="spikes"))
    prev = "x"
    weight_bytes = 0
    for k in range(layers):
        w = rng.uniform(0.5, 1.5, size=(width, width)).astype(np.float32)
        w *= np.where(rng.random((width, width)) < 0.5, -1, 1).astype(np.float32)  # no zeros
        weight_bytes += w.nbytes
        g.add(f"fc{k}", ir.Dense(weight=w), [prev])
        if k < layers - 1:
            prev = g.add(f"if{k}", ir.IF(shape=(width,), threshold=1.0), [f"fc{k}"])
        else:
            g.add("out", ir.Readout(shape=(width,)), [f"fc{k}"])
    g.outputs = ["out"]
    return g, layers * width, layers * width * width, weight_bytes


def wide(layers: int = 10, width: int = 3162, seed: int = 0) -> tuple[ir.Graph, int, int, int]:
    return chain(layers, width, seed)


SHAPES = {"chain": lambda: chain(10_000, 100), "wide": wide}


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


class PeakSampler:
    """Samples VmRSS in a background thread (numpy/torch allocations escape tracemalloc)."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, _status_kib("VmRSS"))
            time.sleep(self.interval)

    def __enter__(self) -> "PeakSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kib = max(self.peak_kib, _status_kib("VmRSS"))


def run(graph: ir.Graph, neurons: int, synapses: int, weight_bytes: int, hw: str) -> bool:
    gc.collect()
    ctx = PassContext(options={"hw": hw})
    reset = _reset_peak()
    rss0 = _status_kib("VmRSS")
    with PeakSampler() as sampler:
        t0 = time.perf_counter()
        mapped = map_to_cores(graph, ctx)
        wall = time.perf_counter() - t0
    hwm = _status_kib("VmHWM") if reset else 0
    growth = (max(hwm, sampler.peak_kib) - rss0) * 1024
    m = mapped.meta["mapping"]
    ratio = growth / weight_bytes
    ok_time = wall < TIME_LIMIT_S
    ok_mem = ratio < MEMORY_LIMIT_RATIO
    print(f"profile {hw}")
    print(f"  neurons {neurons:,}  synapses {synapses:,}  weight bytes {weight_bytes:,}")
    print(f"  cores used {m['cores_used']:,}  chips {m['chips']}  objective {m['objective_snake']:.6g} -> {m['objective']:.6g}")
    print(f"  wall {wall:.2f} s  (target < {TIME_LIMIT_S:g} s): {'PASS' if ok_time else 'FAIL'}")
    print(f"  peak memory growth {growth / 2**20:,.0f} MiB = {ratio:.2f} x weight bytes "
          f"(target < {MEMORY_LIMIT_RATIO:g} x; peak from {'VmHWM and ' if reset else ''}5 ms VmRSS samples): "
          f"{'PASS' if ok_mem else 'FAIL'}")
    for entry in ctx.report:
        print(f"  note: {entry['message'][:160]}")
    del mapped
    return ok_time and ok_mem


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    ap.add_argument("--profiles", nargs="+", default=["loihi", "loihi2"])
    ap.add_argument("--in-process", action="store_true", help="map in this process (used by the default run)")
    args = ap.parse_args(argv)
    if not args.in_process:
        ok = True
        for shape in args.shapes:
            for hw in args.profiles:
                cmd = [sys.executable, __file__, "--shapes", shape, "--profiles", hw, "--in-process"]
                ok &= subprocess.run(cmd).returncode == 0
        print("ALL PASS" if ok else "SOME FAIL")
        return 0 if ok else 1
    ok = True
    for shape in args.shapes:
        t0 = time.perf_counter()
        graph, neurons, synapses, weight_bytes = SHAPES[shape]()
        print(f"network {shape}: built in {time.perf_counter() - t0:.1f} s")
        for hw in args.profiles:
            ok &= run(graph, neurons, synapses, weight_bytes, hw)
        del graph
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
