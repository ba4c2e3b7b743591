"""Per-operation costs of the simulator's synaptic kernels on this machine.

The simulator decides per population and chunk between dense products and event gathers with
the constants in backends/sim/synapses.py; this script measures them (seconds per
multiply-accumulate or per gathered weight) so the constants can be checked or updated, and
shows at which input spike rate the event path starts to win for a dense 784x512 layer.

    python benchmarks/sim_kernels.py
"""
from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from snc.backends.sim import synapses


def best(fn, repeats=5):
    fn()
    t_best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        t_best = min(t_best, time.perf_counter() - t)
    return t_best


def main() -> None:
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    rows, n_in, n_out = 2560, 784, 512
    w = rng.integers(-128, 128, (n_out, n_in)).astype(np.float32)
    wt = torch.from_numpy(np.ascontiguousarray(w.T))
    w8 = torch.from_numpy(np.ascontiguousarray(w.T.astype(np.int8)))
    measured = {}
    s = rng.random((rows, n_in)) < 0.1
    x = torch.from_numpy(s.astype(np.float32))
    macs = rows * n_in * n_out
    measured["COST_GEMM_F32"] = best(lambda: x @ wt) / macs
    x8 = torch.from_numpy(s.view(np.int8))
    measured["COST_GEMM_INT8"] = best(lambda: torch._int_mm(x8, w8)) / macs
    conv_w = torch.from_numpy(rng.normal(size=(32, 16, 3, 3)).astype(np.float32))
    img = torch.from_numpy((rng.random((256, 16, 16, 16)) < 0.1).astype(np.float32))
    conv_macs = 256 * 32 * 16 * 16 * 16 * 9
    measured["COST_CONV"] = best(lambda: F.conv2d(img, conv_w, padding=1)) / conv_macs
    st = torch.from_numpy(s)
    events = int(s.sum())

    def gather():
        idx = st.nonzero()
        counts = torch.bincount(idx[:, 0], minlength=rows)
        offsets = torch.cumsum(counts, 0) - counts
        return F.embedding_bag(idx[:, 1].contiguous(), wt, offsets, mode="sum")

    measured["COST_GATHER_DENSE"] = best(gather) / (events * n_out)
    m = sp.random(n_out, n_in, density=0.02, random_state=0, format="csr", dtype=np.float32)
    mt = m.T.tocsr()
    ss = sp.csr_matrix(s.astype(np.float32))
    gathered = int((ss @ (mt != 0).astype(np.float32)).sum())
    measured["COST_GATHER_SPARSE"] = best(lambda: (ss @ mt).toarray()) / max(1, gathered)
    print("| constant | measured here (s/op) | in backends/sim/synapses.py |")
    print("|---|---|---|")
    for k, v in measured.items():
        print(f"| {k} | {v:.2e} | {getattr(synapses, k):.2e} |")
    # Where events beat dense for a binary 784x512 layer.
    dense = min(measured["COST_GEMM_F32"], measured["COST_GEMM_INT8"])
    print(f"\nevent path cheaper than the int8 GEMM below an input rate of {dense / measured['COST_GATHER_DENSE']:.3f}, "
          f"than the float32 GEMM below {measured['COST_GEMM_F32'] / measured['COST_GATHER_DENSE']:.3f}")


if __name__ == "__main__":
    main()
