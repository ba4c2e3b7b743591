"""Oracle runner: the NeuroBench harness (neurobench 2.3.0, in .venv-oracles) on snnTorch networks
rebuilt from plain files. Run by the oracle interpreter, never imported by snc:

    $SNC_ORACLE_PYTHON tests/oracles/neurobench_run.py SPEC.json ARRAYS.npz OUT.json

SPEC.json: {"networks": {net: {"layers": [...], "batch_size": B, "cases": [case, ...]}}}, each
layer one of
    {"kind": "Linear", "weight": key, "bias": key}
    {"kind": "Conv2d", "weight": key, "bias": key, "stride": s, "padding": p}
    {"kind": "Leaky", "beta": key, "threshold": key, "reset": "subtract"|"zero", "output": bool}
    {"kind": "AvgPool2d", "kernel": k}
    {"kind": "Flatten"}
ARRAYS.npz: the arrays named by the keys, and the data of each case as "<net>/<case>",
(samples, steps, *features) float32 (NeuroBench's layout). No pickle on either side.

OUT.json: {net: {case: {"results": Benchmark.run()'s dict, "errors": [lines], "footprint_before": n}}}.
"errors" holds every "Error running ..." line the harness printed: it reports a metric that
raised as 0.0, so a caller must check that the list is empty.
"""
from __future__ import annotations

import contextlib
import io
import json
import sys

import numpy as np
import torch


def build(layers: list[dict], arrays) -> torch.nn.Sequential:
    import snntorch as snn

    def t(key):
        return torch.from_numpy(np.ascontiguousarray(arrays[key], dtype=np.float32))

    mods = []
    for spec in layers:
        kind = spec["kind"]
        if kind == "Linear":
            w = t(spec["weight"])
            m = torch.nn.Linear(w.shape[1], w.shape[0])
        elif kind == "Conv2d":
            w = t(spec["weight"])
            m = torch.nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]), stride=spec.get("stride", 1),
                                padding=spec.get("padding", 0))
        elif kind == "Leaky":
            m = snn.Leaky(beta=t(spec["beta"]), threshold=t(spec["threshold"]), reset_mechanism=spec["reset"],
                          init_hidden=True, output=bool(spec.get("output", False)))
        elif kind == "AvgPool2d":
            m = torch.nn.AvgPool2d(spec["kernel"])
        elif kind == "Flatten":
            m = torch.nn.Flatten()
        else:
            raise SystemExit(f"neurobench_run: unknown layer kind {kind!r}")
        if kind in ("Linear", "Conv2d"):
            with torch.no_grad():
                m.weight.copy_(w)
                m.bias.copy_(t(spec["bias"]))
        mods.append(m)
    return torch.nn.Sequential(*mods)


def run_case(layers, arrays, x: np.ndarray, batch_size: int) -> dict:
    from torch.utils.data import DataLoader, TensorDataset

    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.static import ConnectionSparsity, Footprint
    from neurobench.metrics.workload import ActivationSparsity, MembraneUpdates, SynapticOperations
    from neurobench.models import SNNTorchModel

    model = SNNTorchModel(build(layers, arrays))  # a fresh wrapper for every Benchmark (see ORACLES.md)
    footprint_before = Footprint()(model)
    data = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    loader = DataLoader(TensorDataset(data, torch.zeros(len(data), dtype=torch.long)), batch_size=batch_size, shuffle=False)
    bench = Benchmark(model, loader, [], [], [[Footprint, ConnectionSparsity],
                                              [ActivationSparsity, SynapticOperations, MembraneUpdates]])
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), torch.no_grad():
        results = bench.run(quiet=False)
    del bench
    errors = [line.strip() for line in printed.getvalue().splitlines() if line.strip().startswith("Error running")]
    return {"results": _plain(results), "errors": errors, "footprint_before": int(footprint_before)}


def _plain(v):
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, torch.Tensor):
        return v.item()
    if isinstance(v, (np.generic,)):
        return v.item()
    return v


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: neurobench_run.py SPEC.json ARRAYS.npz OUT.json", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    spec = json.loads(open(argv[0]).read())
    arrays = np.load(argv[1], allow_pickle=False)
    out = {}
    for net, desc in spec["networks"].items():
        out[net] = {case: run_case(desc["layers"], arrays, arrays[f"{net}/{case}"], int(desc["batch_size"]))
                    for case in desc["cases"]}
    import neurobench
    import snntorch

    out["_versions"] = {"neurobench": getattr(neurobench, "__version__", "?"), "snntorch": snntorch.__version__,
                        "torch": torch.__version__}
    with open(argv[2], "w") as f:
        json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
