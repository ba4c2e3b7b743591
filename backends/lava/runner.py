"""Run a compiled graph in Lava (in its own Python 3.10 environment) and compare with snc's simulator.

Lava 0.10 needs Python 3.10 and numpy < 2, so it lives in ``.venv-lava`` (``make lava``) or any
interpreter named by ``$SNC_LAVA_PYTHON``. The exported program runs in a subprocess with a
timeout, in its own process group: on a timeout or a failure the whole group (Lava spawns one OS
process per Lava process) is killed, so nothing keeps running.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from snc.errors import BackendError
from snc.ir import INPUT, NEURON, READOUT, Graph

from ..sim import SimResult, build_plan, simulate
from ..sim.result import PopulationStats
from .emitter import export, fixed_point_ready

DEFAULT_TIMEOUT = 1800.0
PER_SAMPLE_TIMEOUT = 120.0


def lava_python() -> str:
    """The interpreter that has lava-nc: $SNC_LAVA_PYTHON, else a .venv-lava next to snc's source
    or in the working directory."""
    env = os.environ.get("SNC_LAVA_PYTHON")
    if env:
        if not Path(env).exists():
            raise BackendError(f"SNC_LAVA_PYTHON={env} does not exist")
        return env
    import snc

    candidates = [Path(snc.__file__).resolve().parents[1] / ".venv-lava", Path.cwd() / ".venv-lava"]
    for venv in candidates:
        py = venv / "bin" / "python"
        if py.exists():
            return str(py)
    raise BackendError(
        "no Lava environment: run `make lava` (builds .venv-lava with Python 3.10 and lava-nc 0.10.0) "
        "or set SNC_LAVA_PYTHON to a Python 3.10 interpreter that has lava-nc installed"
    )


def input_for_lava(graph: Graph, data: np.ndarray, timesteps: int, seed: int) -> np.ndarray:
    """What the exported program reads: analog samples as they are, spikes as (N, T, *shape);
    rate-encoded samples become the same Bernoulli spikes snc's simulator draws (seeded per sample)."""
    (name,) = graph.input_names
    node = graph.nodes[name]
    x = node.conform(data, name, timesteps)
    if node.encoding == "direct":
        return x.astype(np.float64)
    if node.encoding == "spikes":
        return x[:, :timesteps].astype(np.uint8)
    n = int(np.prod(node.shape))
    out = np.empty((len(x), timesteps, n), dtype=np.uint8)
    for i in range(len(x)):
        rng = np.random.default_rng([seed, i])
        out[i] = rng.random((timesteps, n), dtype=np.float32) < x[i].reshape(-1)
    return out.reshape((len(x), timesteps) + tuple(node.shape))


@dataclass
class LavaRun:
    spikes: dict[str, np.ndarray]  # population -> (N, T, n) bool
    readout_v: np.ndarray | None
    seconds: float  # the whole subprocess (interpreter start and imports included)
    folder: str | None
    sample_seconds: np.ndarray | None = None  # per sample inside Lava: build, run, read back


def run_exported(folder: str | os.PathLike, inputs: np.ndarray, steps: int, cfg: str = "fixed",
                 timeout: float | None = None, python: str | None = None) -> LavaRun:
    """Run an exported folder's run.py on ``inputs`` in the Lava environment."""
    folder = Path(folder)
    python = python or lava_python()
    timeout = timeout if timeout is not None else min(DEFAULT_TIMEOUT, 60.0 + PER_SAMPLE_TIMEOUT * len(inputs))
    spec = json.loads((folder / "network.json").read_text())
    with tempfile.TemporaryDirectory(prefix="snc-lava-io-") as io_dir:
        inp = Path(io_dir) / "input.npy"
        out = Path(io_dir) / "spikes.npz"
        np.save(inp, inputs)
        cmd = [python, str(folder / "run.py"), "--steps", str(steps), "--input", str(inp), "--out", str(out), "--cfg", cfg]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                                env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise BackendError(f"Lava did not finish within {timeout:.0f} s; its processes were stopped") from None
        finally:
            _kill_group(proc)  # Lava's helper processes, whatever happened
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            lines = [l for l in (err or "").strip().splitlines() if l.strip()]
            raise BackendError(f"Lava run failed (exit {proc.returncode}): {lines[-1] if lines else 'no message'}")
        with np.load(out, allow_pickle=False) as npz:
            labels = json.loads(str(npz["labels"]))
            spikes = {labels[str(p["index"])]: npz[f"spikes_{p['index']}"] for p in spec["populations"] if p["role"] == "neuron"}
            readout_v = npz["readout_v"] if npz["readout_v"].size else None
            sample_seconds = npz["seconds"] if "seconds" in npz.files else None
    return LavaRun(spikes, readout_v, seconds, str(folder), sample_seconds)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:  # pragma: no cover
        pass


def simulate_lava(graph: Graph, data: np.ndarray, *, timesteps: int | None = None, cfg: str = "fixed",
                  labels: np.ndarray | None = None, seed: int = 0, timeout: float | None = None,
                  keep_folder: str | os.PathLike | None = None) -> SimResult:
    """Run ``graph`` in Lava; the result has the simulator's structure (spikes per population and
    step, rasters of every sample, synaptic operations from the non-zero fan-out, predictions;
    active neuron updates are not observable in Lava and stay zero)."""
    timesteps = int(timesteps if timesteps is not None else graph.meta.get("timesteps", 64))
    if cfg == "fixed" and not fixed_point_ready(graph):
        raise BackendError("this graph has no fixed-point parameters: quantize it, or run Lava with cfg float")
    inputs = input_for_lava(graph, data, timesteps, seed)
    with tempfile.TemporaryDirectory(prefix="snc-lava-") as tmp:
        folder = Path(keep_folder) if keep_folder is not None else Path(tmp) / "network"
        export(graph, folder, timesteps=timesteps)
        run = run_exported(folder, inputs, timesteps, cfg, timeout)
    return _as_result(graph, run, timesteps, cfg, labels, len(inputs))


def _as_result(graph: Graph, run: LavaRun, timesteps: int, cfg: str, labels, n: int) -> SimResult:
    plan = build_plan(graph)
    stats: dict[str, PopulationStats] = {}
    outputs: dict[str, np.ndarray] = {}
    for pop in plan.populations:
        node = pop.node
        if node.role == INPUT:
            continue
        s = run.spikes.get(pop.name)
        if s is None:
            s = np.zeros((n, timesteps, pop.size), bool)
        counts = s.sum(axis=2).astype(np.int32)
        fan = plan.fanout[pop.name]
        stats[pop.name] = PopulationStats(
            name=pop.name, kind=node.kind, neurons=pop.present, timesteps=timesteps, spikes=counts,
            synops=(s.astype(np.int64) @ fan) if fan.any() else np.zeros((n, timesteps), np.int64),
            active_updates=np.zeros((n, timesteps), np.int32), neuron_spikes=s.sum(axis=(0, 1)).astype(np.int64),
            rasters={i: s[i] for i in range(n)} if node.role != READOUT else {}, spiking=node.role == NEURON,
        )
        if node.role == READOUT:
            if node.mode == "spike_count":
                src = pop.projections[0].source
                outputs[pop.name] = run.spikes[src].sum(axis=1).astype(np.float64)
            elif cfg == "fixed":
                outputs[pop.name] = run.readout_v * (float(node.fixed.scale) / 64.0) * node.output_scale(timesteps)
            else:
                outputs[pop.name] = run.readout_v * node.output_scale(timesteps)
    readout = plan.readouts[0].name
    return SimResult(
        predictions=outputs[readout].argmax(axis=1), outputs=outputs, populations=stats, timesteps=timesteps,
        arithmetic="fixed" if cfg == "fixed" else "float32", timing="delay", labels=labels, wall_seconds=run.seconds,
        extra={"backend": "lava", "cfg": cfg},
    )


def compare(ours: SimResult, lava: SimResult) -> dict[str, Any]:
    """Spike-for-spike comparison: number of differing (sample, step, neuron) entries and the first
    one (earliest step, then population order, sample, neuron)."""
    mismatches = 0
    first = None
    for name, st in lava.populations.items():
        if st.kind == "Readout":
            continue
        mine = ours.populations[name]
        for i, theirs in st.rasters.items():
            diff = mine.rasters[i] != theirs
            count = int(diff.sum())
            if count:
                mismatches += count
                t, k = np.argwhere(diff)[0]
                cand = {"population": name, "sample": int(i), "step": int(t), "neuron": int(k),
                        "snc": bool(mine.rasters[i][t, k]), "lava": bool(theirs[t, k])}
                if first is None or (cand["step"], cand["sample"]) < (first["step"], first["sample"]):
                    first = cand
    return {"mismatches": mismatches, "first": first}


def check(graph: Graph, data: np.ndarray, *, timesteps: int | None = None, cfg: str = "fixed",
          labels: np.ndarray | None = None, seed: int = 0, timeout: float | None = None) -> tuple[SimResult, SimResult, dict]:
    """Run Lava and snc's simulator (fixed point or float, one-step synaptic delay) on the same
    input and compare every spike."""
    timesteps = int(timesteps if timesteps is not None else graph.meta.get("timesteps", 64))
    lava = simulate_lava(graph, data, timesteps=timesteps, cfg=cfg, labels=labels, seed=seed, timeout=timeout)
    ours = simulate(graph, data, labels=labels, timesteps=timesteps, arithmetic="fixed" if cfg == "fixed" else "float32",
                    timing="delay", seed=seed, rasters=range(len(lava.predictions)))
    return lava, ours, compare(ours, lava)
