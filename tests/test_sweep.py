"""``snc sweep``: the grid, the results file keyed by settings (a finished point is never
recomputed), the Pareto front and best point per chip against hand-made rows, the outputs, and
the same rows from Dask tasks as from one process."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from click.testing import CliRunner

from snc.cli import main
from snc.errors import InvalidOption
from snc.sweep import ResultsStore, best_per_chip, load_config, pareto, point_key, run_sweep, write_outputs


def _workspace(tmp_path, grid: str) -> Path:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 3)).eval()
    torch.export.save(torch.export.export(model, (torch.zeros(1, 1, 4, 4),)), str(tmp_path / "m.pt2"))
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.random((24, 1, 4, 4), dtype=np.float32))
    np.save(tmp_path / "y.npy", rng.integers(0, 3, 24))
    cfg = tmp_path / "sweep.toml"
    cfg.write_text(textwrap.dedent(f'''
        model = "m.pt2"
        data = "x.npy"
        labels = "y.npy"
        calib = "x.npy"
        out = "out"
        {grid}
    '''))
    return cfg


def test_grid_points_and_keys(tmp_path):
    cfg = load_config(_workspace(tmp_path, "[grid]\ntimesteps = [16, 32, 64]\nweight_bits = [4, 6, 8]\nhw = ['loihi', 'loihi2']"))
    assert len(cfg.points) == 3 * 3 * 2 and cfg.out == (tmp_path / "out").resolve()
    assert cfg.points[0] == {"hw": "loihi", "timesteps": 16, "weight_bits": 4, "prune": True, "percentile": 99.9}
    keys = {point_key(p, "inputs") for p in cfg.points}
    assert len(keys) == 18  # one key per setting combination
    assert point_key(cfg.points[0], "inputs") != point_key(cfg.points[0], "other data")
    assert point_key(dict(reversed(list(cfg.points[0].items()))), "inputs") == point_key(cfg.points[0], "inputs")


@pytest.mark.parametrize("grid, words", [
    ("[grid]\ntimestep = [16]", "unknown setting 'timestep'"),
    ("[grid]\ntimesteps = [0]", "timesteps must be an integer >= 1"),
    ("[grid]\ntimesteps = 16", "grid.timesteps must be a non-empty list"),
    ("", "give either a [grid] table or a [[points]] list"),
    ("[grid]\nhw = ['loihi']\n[[points]]\nhw = 'loihi'", "give either a [grid] table or a [[points]] list"),
])
def test_bad_configs_are_one_line_naming_the_file(tmp_path, grid, words):
    path = _workspace(tmp_path, grid)
    with pytest.raises(InvalidOption) as err:
        load_config(path)
    assert words in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)
    run = CliRunner().invoke(main, ["sweep", str(path)])
    assert run.exit_code == 2 and words in run.output


def test_a_line_cut_short_by_a_crash_is_ignored(tmp_path):
    store = ResultsStore(tmp_path / "r.jsonl")
    store.add("a", {"hw": "loihi"}, {"energy_j": 1.0})
    with open(tmp_path / "r.jsonl", "a") as fh:
        fh.write('{"key": "b", "point": {"hw": "lo')  # killed mid-write
    assert list(store.done()) == ["a"]


def test_pareto_front_and_best_point_per_chip_by_hand():
    rows = [
        {"key": "a", "hw": "loihi", "accuracy": 0.90, "energy_j": 1.0},
        {"key": "b", "hw": "loihi", "accuracy": 0.95, "energy_j": 2.0},
        {"key": "c", "hw": "loihi", "accuracy": 0.93, "energy_j": 3.0},   # beaten by b
        {"key": "d", "hw": "loihi2", "accuracy": 0.95, "energy_j": 0.5},  # beats b: same accuracy, less energy
        {"key": "e", "hw": "loihi2", "accuracy": 0.80, "energy_j": 0.5},  # beaten by d
    ]
    assert [r["key"] for r in pareto(rows)] == ["d"]
    assert [r["key"] for r in pareto(rows[:3])] == ["a", "b"]
    assert {hw: r["key"] for hw, r in best_per_chip(rows).items()} == {"loihi": "b", "loihi2": "d"}


def test_finished_points_are_never_recomputed(tmp_path):
    cfg = load_config(_workspace(tmp_path, "[grid]\ntimesteps = [8, 16]\nhw = ['loihi', 'loihi2']"))
    calls = []

    def runner(point, *args):
        calls.append(dict(point))
        return {"accuracy": 0.5, "energy_j": float(point["timesteps"]) * (2.0 if point["hw"] == "loihi" else 1.0)}

    rows = run_sweep(cfg, runner=runner)
    # grid order: settings sorted by name (hw, then timesteps); energy = T x (2 on loihi, 1 on loihi2)
    assert len(calls) == 4 and [r["energy_j"] for r in rows] == [16.0, 32.0, 8.0, 16.0]
    assert run_sweep(cfg, runner=runner) == rows and len(calls) == 4  # a rerun computes nothing
    lines = (cfg.out / "results.jsonl").read_text().splitlines()
    (cfg.out / "results.jsonl").write_text("\n".join(lines[:-1]) + "\n")  # one point lost
    assert run_sweep(cfg, runner=runner) == rows and len(calls) == 5 and calls[-1] == cfg.points[-1]
    # The Python API reads the same results file: nothing left to compute, outputs written.
    from snc.sweep import sweep

    assert [r["energy_j"] for r in sweep(cfg.path)] == [16.0, 32.0, 8.0, 16.0]
    assert (cfg.out / "results.csv").exists() and (cfg.out / "pareto.png").exists()


def test_cli_sweep_end_to_end_and_on_a_dask_cluster(tmp_path):
    pytest.importorskip("distributed", reason="the distributed extra (make venv installs it)")
    from distributed import Client, LocalCluster

    cfg_path = _workspace(tmp_path, "[grid]\ntimesteps = [8, 16]\nweight_bits = [4, 8]\nhw = ['loihi']")
    run = CliRunner().invoke(main, ["sweep", str(cfg_path)])
    assert run.exit_code == 0, run.output
    out = tmp_path / "out"
    doc = json.loads((out / "results.json").read_text())
    assert len(doc["points"]) == 4 and set(doc["best_per_chip"]) == {"loihi"}
    csv_rows = (out / "results.csv").read_text().splitlines()
    assert len(csv_rows) == 5 and csv_rows[0].startswith("hw,timesteps,weight_bits")
    assert (out / "pareto.png").stat().st_size > 0 and "best on loihi: T " in run.output
    for p in doc["points"]:
        assert p["energy_j"] > 0 and 0 <= p["accuracy"] <= 1 and p["cores"] >= 1
    lines = (out / "results.jsonl").read_text()
    again = CliRunner().invoke(main, ["sweep", str(cfg_path)])
    assert again.exit_code == 0 and (out / "results.jsonl").read_text() == lines  # nothing recomputed
    # The same points as Dask tasks on two worker processes: the same results.
    cfg = load_config(cfg_path)
    cfg.out = tmp_path / "dask-out"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        rows = run_sweep(cfg, client=client)
    local = {p["key"]: p for p in doc["points"]}
    for r in rows:
        for key in ("accuracy", "energy_j", "latency_s", "cores", "synops"):
            assert r[key] == local[r["key"]][key], key
    assert write_outputs(rows, cfg.out)["plot"].exists()


def test_a_worker_killed_mid_sweep_loses_no_point_and_changes_no_result(tmp_path):
    """Issue 14 acceptance 2: a real LocalCluster of 2 worker processes; one worker is killed
    (SIGKILL) once the first point has arrived; every point is still there and equal to a
    single-process run, and a rerun computes nothing."""
    pytest.importorskip("distributed", reason="the distributed extra (make venv installs it)")
    import os
    import signal
    import threading
    import time

    from distributed import Client, LocalCluster

    cfg_path = _workspace(tmp_path, "[grid]\ntimesteps = [8, 16, 24]\nweight_bits = [4, 8]\nhw = ['loihi']")
    cfg = load_config(cfg_path)
    local = {r["key"]: r for r in run_sweep(cfg)}  # single process, into OUT
    cfg.out = tmp_path / "killed"
    results = cfg.out / "results.jsonl"
    killed = {}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        pids = client.run(os.getpid)  # {worker address: pid}

        def kill_one() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if results.exists() and results.read_text().count("\n") >= 1:
                    killed["done_before"] = results.read_text().count("\n")
                    pid = next(iter(pids.values()))
                    os.kill(pid, signal.SIGKILL)
                    killed["pid"] = pid
                    return
                time.sleep(0.02)

        watcher = threading.Thread(target=kill_one)
        watcher.start()
        rows = run_sweep(cfg, client=client)
        watcher.join()
        assert killed.get("pid") and killed["done_before"] < len(cfg.points), killed  # killed mid-run
        assert killed["pid"] not in client.run(os.getpid).values()  # that process is gone
        lines = results.read_text()
        again = run_sweep(cfg, client=client)
    assert results.read_text() == lines and again == rows  # the rerun computed nothing
    assert len(rows) == len(cfg.points) == 6 and len(lines.splitlines()) == 6
    for r in rows:
        for key in ("accuracy", "energy_j", "latency_s", "cores", "synops", "dynamic_energy_j"):
            assert r[key] == local[r["key"]][key], key
