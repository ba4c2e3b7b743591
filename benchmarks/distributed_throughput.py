"""Sharded `snc estimate` on a local Dask cluster: samples per second with 1 and 2 worker
processes against one process, and Dask's per-task overhead (issue 14, acceptance 3).

The network is the NxTF MNIST CNN of benchmarks/nxtf.py (one training epoch on the first 8,000
MNIST test images; without ../shared, scikit-learn digits upsampled), compiled with the default
pipeline, estimated on Loihi at T = 32 over N images (default 4,000):

* baseline: `snc.estimate.estimate` in this process (torch with 1 thread per process, as each
  worker has one);
* `snc.distributed.estimate(..., client=...)` with a LocalCluster of 1 and of 2 worker processes
  (one thread each), started and warmed (one small estimate) before timing; the results are
  checked equal to the baseline;
* per-task overhead: 200 no-op tasks submitted and gathered, seconds per task.

    python benchmarks/distributed_throughput.py [--samples 4000]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import snc  # noqa: E402
import nxtf  # noqa: E402
from estimate_10k import data  # noqa: E402


def _noop(i: int) -> int:
    return i


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=4000)
    ap.add_argument("--timesteps", type=int, default=32)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from distributed import Client, LocalCluster

    import snc.distributed as sd
    from snc.estimate import estimate

    x, y, desc = data(max(args.samples, 8000))
    torch.manual_seed(0)
    model = nxtf.mnist_cnn()
    nxtf.train_mnist(model, x[:8000], y[:8000], 1)
    snn = snc.compile(snc.from_torch(model, x[:2]), calib=x[:500], timesteps=args.timesteps, verify=False)
    x, y = x[:args.samples], y[:args.samples]
    cal = x[:500]

    t0 = time.perf_counter()
    base = estimate(snn, x, labels=y, hw=["loihi"], timesteps=args.timesteps, calibration=cal)
    single = time.perf_counter() - t0
    rows = [("one process (1 torch thread)", single, None)]
    overhead = {}
    for n in (1, 2):
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None) as cluster, Client(cluster) as client:
            client.run(lambda: __import__("torch").set_num_threads(1))
            # Warm the workers (imports, compiled kernels) on a few samples, as a long-running
            # cluster would be; the timed run then pays only the shards.
            sd.estimate(snn, x[:2 * n], labels=y[:2 * n], hw=["loihi"], timesteps=args.timesteps, calibration=cal, client=client)
            t0 = time.perf_counter()
            est = sd.estimate(snn, x, labels=y, hw=["loihi"], timesteps=args.timesteps, calibration=cal, client=client)
            took = time.perf_counter() - t0
            same = est.doc["totals"] == base.doc["totals"] and est.doc["layers"] == base.doc["layers"]
            rows.append((f"{n} worker process(es)", took, same))
            client.gather(client.map(_noop, range(20)))  # warm
            t0 = time.perf_counter()
            client.gather(client.map(_noop, range(200), pure=False))
            overhead[n] = (time.perf_counter() - t0) / 200
    print(f"data: {desc}; {args.samples:,} images, T = {args.timesteps}, hw loihi")
    print("| run | seconds | samples/s | vs one process | same results |")
    print("|---|---|---|---|---|")
    for name, s, same in rows:
        print(f"| {name} | {s:.1f} | {args.samples / s:,.0f} | {single / s:.2f}x | {'-' if same is None else 'yes' if same else 'NO'} |")
    for n, o in overhead.items():
        print(f"per-task overhead, {n} worker(s): {1e3 * o:.2f} ms per no-op task (200 tasks)")


if __name__ == "__main__":
    main()
