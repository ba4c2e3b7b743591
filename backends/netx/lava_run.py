"""Run a netx HDF5 network in Lava (lava-nc 0.10 + lava-dl 0.6.0, fixed point), one sample at a
time, and save every layer's spikes. Runs in the Lava environment (.venv-lava), not in snc's:

    python lava_run.py NET.net --input SPIKES.npy --steps T --out OUT.npz

SPIKES.npy is (samples, steps, n_in) 0/1; OUT.npz holds ``layer<i>`` arrays (samples, steps, n).
lava-dl's netx package imports torch in places the loader never needs; stub modules stand in for
them (../shared/reference/NETX_FORMAT.md §0), so nothing in site-packages changes and torch is not
installed.
"""
import argparse
import importlib.util
import sys
import types
import warnings

import numpy as np


def _stub_torch_users() -> None:
    spec = importlib.util.find_spec("lava.lib.dl")
    root = list(spec.submodule_search_locations)[0]
    netx = types.ModuleType("lava.lib.dl.netx")
    netx.__path__ = [f"{root}/netx"]
    netx.__file__ = f"{root}/netx/__init__.py"  # Lava's compiler asks every module for its file
    sys.modules["lava.lib.dl.netx"] = netx
    seq = types.ModuleType("lava.lib.dl.netx.sequential_modules")
    seq.__file__ = f"{root}/netx/sequential_modules.py"
    sys.modules[seq.__name__] = seq
    for name, where in (("lava.lib.dl.slayer", "slayer/__init__.py"), ("lava.lib.dl.slayer.neuron", "slayer/neuron/__init__.py"),
                        ("lava.lib.dl.slayer.neuron.rf", "slayer/neuron/rf.py")):
        mod = types.ModuleType(name)
        mod.__path__ = []
        mod.__file__ = f"{root}/{where}"
        sys.modules[name] = mod
    sys.modules["lava.lib.dl.slayer.neuron.rf"].neuron_params = None


def run_sample(path: str, spikes: np.ndarray, steps: int) -> list:
    from lava.lib.dl.netx import hdf5
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel
    from lava.proc.io.source import RingBuffer

    net = hdf5.Network(net_config=path)
    source = RingBuffer(data=spikes[:steps].T.astype(np.int32))
    source.s_out.connect(net.inp)
    extractors = []
    for layer in net.layers:
        ext = Extractor(shape=layer.out.shape, buffer_size=steps)
        layer.out.connect(ext.in_port)
        extractors.append(ext)
    cfg = Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map={Extractor: PyLoihiExtractorModel})
    try:
        net.run(condition=RunSteps(num_steps=steps), run_cfg=cfg)
        return [np.array([ext.receive() for _ in range(steps)]).reshape(steps, -1).astype(bool) for ext in extractors]
    finally:
        net.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("net")
    ap.add_argument("--input", required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    _stub_torch_users()
    x = np.load(args.input, allow_pickle=False)
    per_sample = [run_sample(args.net, x[i], args.steps) for i in range(len(x))]
    np.savez(args.out, **{f"layer{j}": np.stack([s[j] for s in per_sample]) for j in range(len(per_sample[0]))})


if __name__ == "__main__":
    main()
