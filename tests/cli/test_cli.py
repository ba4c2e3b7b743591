"""snc's command line: ``snc compile / simulate / inspect / passes``.

The contract (from the issue the CLI implements):

    snc compile MODEL -o OUT.snir [--calib X.npy] [--timesteps T] [--percentile P] [--passes a,b,c]
    snc simulate ARTIFACT --data X.npy [--labels Y.npy] [--timesteps T] [--batch-size B] [--fixed-point] [--json]
    snc inspect ARTIFACT [--json]

* MODEL is .onnx or .pt2; ARTIFACT is .snir or any MODEL, compiled on the fly with --calib.
* Data files are .npy/.npz laid out (N, *input shape); pickles are refused, never unpickled.
* ``simulate --json`` prints ONE JSON object; progress goes to stderr only.
* An error is one line on stderr (``snc: error: ...``) naming the file (and node where relevant),
  exit code 2, no traceback, and no output file left behind: the old artifact stays untouched.

Happy paths run in-process through click's CliRunner (fast); every error case runs the real
console script in a subprocess, so exit codes and stderr are what a user sees. The error cases
are launched together, in parallel, once per module.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn
from click.testing import CliRunner, Result
from onnx import TensorProto, helper, numpy_helper

from snc.cli import main

INPUT_SHAPE = (1, 4, 4)
N_SAMPLES = 12
N_CLASSES = 3
PASS_NAMES = ("fold-bn", "fold-affine", "convert", "balance", "quantize", "prune", "map")  # the default pipeline
# What the CLI may print on stderr before an error: its progress lines.
PROGRESS_PREFIXES = ("snc: reading ", "snc: pass ", "simulating")


# ---------------------------------------------------------------------------------------------
# models and data
# ---------------------------------------------------------------------------------------------
def build_mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, N_CLASSES)).eval()


def build_cnn() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(4 * 2 * 2, N_CLASSES),
    )
    with torch.no_grad():  # non-trivial running statistics, so that folding them matters
        model[1].running_mean.uniform_(-0.2, 0.2)
        model[1].running_var.uniform_(0.5, 2.0)
    return model.eval()


def gemm_model(path: Path, middle: str, w1: np.ndarray) -> Path:
    """x (1,16) -> Gemm 'fc1' -> ``middle`` op (node 'squash' / 'act') -> Gemm 'fc2' -> y (1,3)."""
    rng = np.random.default_rng(0)
    w2 = rng.standard_normal((8, N_CLASSES)).astype(np.float32)
    mid_name = "squash" if middle == "Sigmoid" else "act"
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["x", "W1"], ["h"], name="fc1"),
            helper.make_node(middle, ["h"], ["a"], name=mid_name),
            helper.make_node("Gemm", ["a", "W2"], ["y"], name="fc2"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, N_CLASSES])],
        initializer=[numpy_helper.from_array(w1.astype(np.float32), "W1"), numpy_helper.from_array(w2, "W2")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


class _CreatesFile:
    """Unpickling this creates ``path``: the proof that a loader did unpickle."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def save_object_array(path: Path, marker: Path) -> Path:
    a = np.empty(3, dtype=object)
    a[0] = _CreatesFile(marker)
    np.save(path, a, allow_pickle=True)
    return path


@dataclass
class Workspace:
    root: Path
    mlp_onnx: Path
    cnn_pt2: Path
    calib: Path
    labels: Path
    mlp_snir: Path  # the MLP compiled with the default pipeline


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Workspace:
    root = tmp_path_factory.mktemp("cli")
    x = torch.zeros(1, *INPUT_SHAPE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(build_mlp(), (x,), str(root / "mlp.onnx"), dynamo=False)
    torch.export.save(torch.export.export(build_cnn(), (x,)), str(root / "cnn.pt2"))
    rng = np.random.default_rng(0)
    np.save(root / "calib.npy", rng.random((N_SAMPLES, *INPUT_SHAPE), dtype=np.float32))
    np.save(root / "labels.npy", rng.integers(0, N_CLASSES, N_SAMPLES))
    result = CliRunner().invoke(main, ["compile", str(root / "mlp.onnx"), "-o", str(root / "mlp.snir"),
                                       "--calib", str(root / "calib.npy"), "--timesteps", "16"])
    assert result.exit_code == 0, result.output
    return Workspace(root, root / "mlp.onnx", root / "cnn.pt2", root / "calib.npy", root / "labels.npy",
                     root / "mlp.snir")


# ---------------------------------------------------------------------------------------------
# running the CLI
# ---------------------------------------------------------------------------------------------
def snc_command() -> list[str]:
    """The installed console script, next to this interpreter (or on PATH)."""
    script = Path(sys.executable).with_name("snc")
    if script.exists():
        return [str(script)]
    found = shutil.which("snc")
    assert found is not None, "the snc console script is not installed (run `make venv`)"
    return [found]


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


def run_snc(args: list[str]) -> Run:
    env = {k: v for k, v in os.environ.items() if k != "SNC_DEBUG"}
    proc = subprocess.run(snc_command() + [str(a) for a in args], capture_output=True, text=True, env=env, timeout=120)
    return Run(proc.returncode, proc.stdout, proc.stderr)


def run_snc_parallel(jobs: dict[str, list]) -> dict[str, Run]:
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {key: pool.submit(run_snc, args) for key, args in jobs.items()}
        return {key: f.result() for key, f in futures.items()}


def invoke(*args) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def simulate_json(*args) -> dict:
    result = invoke("simulate", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def error_line(run: Run) -> str:
    """The single line a failed run prints: stderr (not a terminal here) holds nothing else."""
    assert run.returncode == 2, (run.returncode, run.stderr)
    assert "Traceback" not in run.stderr and "Traceback" not in run.stdout, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("snc: error: "), run.stderr
    return lines[0]


# ---------------------------------------------------------------------------------------------
# 1. happy paths
# ---------------------------------------------------------------------------------------------
NUMBER = (int, float)


def check_simulation_doc(doc: dict, *, timesteps: int, samples: int, labelled: bool) -> None:
    """The documented shape of ``simulate --json`` and the arithmetic between its numbers."""
    for key in ("accuracy", "samples", "timesteps", "layers", "totals"):
        assert key in doc, key
    assert doc["samples"] == samples
    assert doc["timesteps"] == timesteps
    if labelled:
        assert isinstance(doc["accuracy"], float) and 0.0 <= doc["accuracy"] <= 1.0
    else:
        assert doc["accuracy"] is None
    assert isinstance(doc["layers"], list) and doc["layers"]
    for layer in doc["layers"]:
        assert isinstance(layer["name"], str) and layer["name"]
        assert isinstance(layer["kind"], str) and layer["kind"]
        assert isinstance(layer["neurons"], int) and not isinstance(layer["neurons"], bool)
        for key in ("spikes_per_sample", "rate", "synops_per_sample"):
            assert isinstance(layer[key], NUMBER) and not isinstance(layer[key], bool), (layer["name"], key)
            assert layer[key] >= 0
        if layer["kind"] == "IF":
            # rate = spikes per neuron per step
            assert layer["spikes_per_sample"] == pytest.approx(layer["rate"] * layer["neurons"] * timesteps)
            assert layer["spikes_per_sample"] <= layer["neurons"] * timesteps
    spiking = [layer for layer in doc["layers"] if layer["kind"] == "IF"]
    assert spiking, "a converted network has IF populations"
    assert doc["totals"]["spikes_per_sample"] == pytest.approx(sum(layer["spikes_per_sample"] for layer in spiking))


def test_compile_onnx_mlp_then_inspect_and_simulate(ws, tmp_path):
    out = tmp_path / "mlp.snir"
    result = invoke("compile", ws.mlp_onnx, "-o", out, "--calib", ws.calib)
    assert result.exit_code == 0, result.output
    assert out.is_file()

    shown = invoke("inspect", out)
    assert shown.exit_code == 0, shown.output
    for header in ("name", "kind", "shape", "neurons", "weights"):
        assert header in shown.stdout
    assert "IF" in shown.stdout and "Readout" in shown.stdout

    doc = simulate_json(out, "--data", ws.calib, "--labels", ws.labels)
    check_simulation_doc(doc, timesteps=64, samples=N_SAMPLES, labelled=True)
    populations = [layer["name"] for layer in doc["layers"] if layer["kind"] in ("IF", "Readout")]
    for name in populations:  # inspect shows every population the simulator reports
        assert name in shown.stdout


def test_compile_pt2_cnn_with_batchnorm_and_maxpool(ws, tmp_path):
    out = tmp_path / "cnn.snir"
    result = invoke("compile", ws.cnn_pt2, "-o", out, "--calib", ws.calib, "--timesteps", "16")
    assert result.exit_code == 0, result.output
    assert out.is_file()

    shown = invoke("inspect", out, "--json")
    assert shown.exit_code == 0, shown.output
    info = json.loads(shown.stdout)
    kinds = {row["kind"] for row in info["nodes"]}
    assert "IF" in kinds and "BatchNorm" not in kinds  # batch-norm was folded away
    assert info["spiking"] is True
    assert info["meta"]["passes"] == list(PASS_NAMES)

    doc = simulate_json(out, "--data", ws.calib)
    check_simulation_doc(doc, timesteps=16, samples=N_SAMPLES, labelled=False)


def test_simulate_timesteps_overrides_the_artifact(ws):
    doc = simulate_json(ws.mlp_snir, "--data", ws.calib, "--timesteps", "7")
    check_simulation_doc(doc, timesteps=7, samples=N_SAMPLES, labelled=False)
    default = simulate_json(ws.mlp_snir, "--data", ws.calib)
    assert default["timesteps"] == 16  # stored by compile --timesteps 16


def test_simulate_batch_size_does_not_change_results(ws):
    docs = [simulate_json(ws.mlp_snir, "--data", ws.calib, "--labels", ws.labels, "--batch-size", b) for b in ("1", "5", "64")]
    for doc in docs:
        doc.pop("wall_seconds", None)
    assert docs[0] == docs[1] == docs[2]


def test_simulate_compiles_a_model_on_the_fly_like_compile_does(ws, tmp_path):
    out = tmp_path / "mlp.snir"
    assert invoke("compile", ws.mlp_onnx, "-o", out, "--calib", ws.calib).exit_code == 0
    from_artifact = simulate_json(out, "--data", ws.calib, "--labels", ws.labels)
    on_the_fly = simulate_json(ws.mlp_onnx, "--calib", ws.calib, "--data", ws.calib, "--labels", ws.labels)
    from_artifact.pop("wall_seconds", None)
    on_the_fly.pop("wall_seconds", None)
    assert on_the_fly == from_artifact


def test_passes_lists_the_pipeline():
    result = invoke("passes")
    assert result.exit_code == 0
    for name in PASS_NAMES:
        assert name in result.stdout


def test_compile_with_chosen_passes(ws, tmp_path):
    out = tmp_path / "unbalanced.snir"
    result = invoke("compile", ws.mlp_onnx, "-o", out, "--calib", ws.calib, "--passes", "fold-bn,convert")
    assert result.exit_code == 0, result.output
    info = json.loads(invoke("inspect", out, "--json").stdout)
    assert info["meta"]["passes"] == ["fold-bn", "convert"]
    assert not any(entry["pass"] == "balance" for entry in info["meta"]["report"])
    check_simulation_doc(simulate_json(out, "--data", ws.calib), timesteps=64, samples=N_SAMPLES, labelled=False)


@pytest.mark.parametrize("command, options", [
    (None, ["compile", "simulate", "inspect", "passes"]),
    ("compile", ["--output", "--calib", "--timesteps", "--percentile", "--passes"]),
    ("simulate", ["--data", "--labels", "--calib", "--timesteps", "--batch-size", "--fixed-point", "--json"]),
    ("inspect", ["--json"]),
    ("passes", []),
])
def test_help(command, options):
    result = invoke(*([command] if command else []), "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.stdout
    for option in options:
        assert option in result.stdout


def test_artifact_gets_the_usual_file_mode(ws, tmp_path):
    out = tmp_path / "mlp.snir"
    assert invoke("compile", ws.mlp_onnx, "-o", out, "--calib", ws.calib).exit_code == 0
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


# ---------------------------------------------------------------------------------------------
# 2. bad inputs: real subprocesses, all launched together
# ---------------------------------------------------------------------------------------------
@dataclass
class BadCase:
    """One bad invocation. ``argv`` uses {out} for the -o path and names files of the workspace."""

    argv: list[str]
    names: str | None  # the offending file's name, which the error must mention
    mentions: list[str] = field(default_factory=list)  # further words the error must contain
    keep_old: bool = False  # also run it with an old artifact at {out}: it must survive


def make_bad_inputs(ws: Workspace) -> dict[str, Path]:
    """The broken files, each under a name that appears nowhere else."""
    bad = ws.root / "bad"
    bad.mkdir()
    data = ws.mlp_onnx.read_bytes()
    (bad / "truncated.onnx").write_bytes(data[: len(data) // 2])
    (bad / "empty.onnx").write_bytes(b"")
    (bad / "text").mkdir()
    (bad / "text" / "model.onnx").write_text("this is not a model\n")
    gemm_model(bad / "sigmoid.onnx", "Sigmoid", np.ones((16, 8)))
    w1 = np.random.default_rng(1).standard_normal((16, 8))
    w1[2, 3] = np.nan
    gemm_model(bad / "nan_weights.onnx", "Relu", w1)
    (bad / "not_a_zip.pt2").write_text("not a zip archive\n")
    save_object_array(bad / "calib_objects.npy", bad / "UNPICKLED_CALIB")
    save_object_array(bad / "data_objects.npy", bad / "UNPICKLED_DATA")
    np.save(bad / "calib_wrong_shape.npy", np.zeros((N_SAMPLES, 3, 7), np.float32))
    np.save(bad / "data_wrong_shape.npy", np.zeros((N_SAMPLES, 5, 5), np.float32))
    np.save(bad / "labels_short.npy", np.zeros(N_SAMPLES - 3, np.int64))
    (bad / "corrupt.snir").write_text("garbage, not a zip\n")
    snir = ws.mlp_snir.read_bytes()
    (bad / "truncated.snir").write_bytes(snir[: len(snir) // 2])
    return {p.relative_to(bad).as_posix(): p for p in bad.rglob("*") if p.is_file()}


def bad_cases(ws: Workspace, f: dict[str, Path]) -> dict[str, BadCase]:
    compile_ = ["compile"]
    return {
        "truncated-onnx": BadCase(compile_ + [f["truncated.onnx"], "-o", "{out}", "--calib", ws.calib], "truncated.onnx", keep_old=True),
        "empty-onnx": BadCase(compile_ + [f["empty.onnx"], "-o", "{out}", "--calib", ws.calib], "empty.onnx"),
        "text-as-onnx": BadCase(compile_ + [f["text/model.onnx"], "-o", "{out}", "--calib", ws.calib], "model.onnx"),
        "unsupported-op": BadCase(compile_ + [f["sigmoid.onnx"], "-o", "{out}"], "sigmoid.onnx", ["squash", "Sigmoid"], keep_old=True),
        "nan-weights": BadCase(compile_ + [f["nan_weights.onnx"], "-o", "{out}"], "nan_weights.onnx", ["fc1", "NaN"], keep_old=True),
        "pt2-not-a-zip": BadCase(compile_ + [f["not_a_zip.pt2"], "-o", "{out}", "--calib", ws.calib], "not_a_zip.pt2"),
        "calib-object-array": BadCase(compile_ + [ws.mlp_onnx, "-o", "{out}", "--calib", f["calib_objects.npy"]], "calib_objects.npy", keep_old=True),
        "calib-wrong-shape": BadCase(compile_ + [ws.mlp_onnx, "-o", "{out}", "--calib", f["calib_wrong_shape.npy"]], "calib_wrong_shape.npy", keep_old=True),
        "model-missing": BadCase(compile_ + [ws.root / "does_not_exist.onnx", "-o", "{out}", "--calib", ws.calib], "does_not_exist.onnx"),
        "output-not-snir": BadCase(compile_ + [ws.mlp_onnx, "-o", "{dir}/model_out.txt", "--calib", ws.calib], "model_out.txt"),
        "unknown-pass": BadCase(compile_ + [ws.mlp_onnx, "-o", "{out}", "--calib", ws.calib, "--passes", "fold-bn,no-such-pass"], None, ["no-such-pass"], keep_old=True),
        "model-without-calib": BadCase(["simulate", ws.mlp_onnx, "--data", ws.calib, "--json"], "mlp.onnx", ["--calib"]),
        "data-object-array": BadCase(["simulate", ws.mlp_snir, "--data", f["data_objects.npy"], "--json"], "data_objects.npy"),
        "data-wrong-shape": BadCase(["simulate", ws.mlp_snir, "--data", f["data_wrong_shape.npy"], "--json"], "data_wrong_shape.npy"),
        "labels-wrong-length": BadCase(["simulate", ws.mlp_snir, "--data", ws.calib, "--labels", f["labels_short.npy"], "--json"], "labels_short.npy"),
        "corrupt-snir-simulate": BadCase(["simulate", f["corrupt.snir"], "--data", ws.calib, "--json"], "corrupt.snir"),
        "corrupt-snir-inspect": BadCase(["inspect", f["corrupt.snir"]], "corrupt.snir"),
        "truncated-snir-inspect": BadCase(["inspect", f["truncated.snir"], "--json"], "truncated.snir"),
    }


# The data-shape check (node.conform) raises without the file: the error names the input node only.
BAD_CASE_IDS = [
    "truncated-onnx", "empty-onnx", "text-as-onnx", "unsupported-op", "nan-weights", "pt2-not-a-zip",
    "calib-object-array", "calib-wrong-shape", "model-missing", "output-not-snir", "unknown-pass",
    "model-without-calib", "data-object-array", "data-wrong-shape", "labels-wrong-length",
    "corrupt-snir-simulate", "corrupt-snir-inspect", "truncated-snir-inspect",
]
KEEP_OLD_IDS = ["truncated-onnx", "unsupported-op", "nan-weights", "calib-object-array", "calib-wrong-shape", "unknown-pass"]


@dataclass
class BadRun:
    case: BadCase
    run: Run
    out_dir: Path  # the folder of -o: nothing may be left in it
    files: dict[str, Path]


@pytest.fixture(scope="module")
def bad_runs(ws) -> dict[str, BadRun]:
    files = make_bad_inputs(ws)
    cases = bad_cases(ws, files)
    assert sorted(cases) == sorted(BAD_CASE_IDS)
    old_artifact = ws.mlp_snir.read_bytes()
    jobs, dirs, which = {}, {}, {}
    for key, case in cases.items():
        variants = [(key, False)] + ([(f"{key}+old", True)] if case.keep_old else [])
        for job, keep in variants:
            out_dir = ws.root / "out" / job
            out_dir.mkdir(parents=True)
            if keep:
                (out_dir / "model.snir").write_bytes(old_artifact)
            jobs[job] = [str(a).replace("{out}", str(out_dir / "model.snir")).replace("{dir}", str(out_dir)) for a in case.argv]
            dirs[job], which[job] = out_dir, case
    runs = run_snc_parallel(jobs)
    return {job: BadRun(which[job], runs[job], dirs[job], files) for job in jobs}


@pytest.mark.parametrize("key", BAD_CASE_IDS)
def test_bad_input_fails_with_one_line_and_no_output(bad_runs, key):
    bad = bad_runs[key]
    line = error_line(bad.run)
    assert len(line) > len("snc: error: ")
    for word in bad.case.mentions:
        assert word in line
    assert bad.run.stdout.strip() == ""  # in particular no partial JSON
    assert list(bad.out_dir.iterdir()) == []  # no artifact, no temporary file


@pytest.mark.parametrize("key", [
    k
    for k in BAD_CASE_IDS if k != "unknown-pass"  # no file is at fault there
])
def test_bad_input_error_names_the_offending_file(bad_runs, key):
    bad = bad_runs[key]
    assert bad.case.names in error_line(bad.run)


@pytest.mark.parametrize("key", KEEP_OLD_IDS)
def test_failed_compile_leaves_the_old_artifact_untouched(ws, bad_runs, key):
    bad = bad_runs[f"{key}+old"]
    error_line(bad.run)
    assert [p.name for p in bad.out_dir.iterdir()] == ["model.snir"]
    assert (bad.out_dir / "model.snir").read_bytes() == ws.mlp_snir.read_bytes()


def test_object_arrays_are_refused_without_unpickling(bad_runs, tmp_path):
    files = bad_runs["calib-object-array"].files
    assert not (files["calib_objects.npy"].parent / "UNPICKLED_CALIB").exists()
    assert not (files["data_objects.npy"].parent / "UNPICKLED_DATA").exists()
    # control: the payload is live, so the absence of the markers above means something
    marker = tmp_path / "UNPICKLED_CONTROL"
    np.load(save_object_array(tmp_path / "control.npy", marker), allow_pickle=True)
    assert marker.exists()


# ---------------------------------------------------------------------------------------------
# 3. progress goes to stderr, JSON alone to stdout
# ---------------------------------------------------------------------------------------------
def test_simulate_progress_goes_to_stderr_not_into_the_json(ws):
    runs = run_snc_parallel({
        "artifact": ["simulate", ws.mlp_snir, "--data", ws.calib, "--labels", ws.labels, "--json"],
        "on-the-fly": ["simulate", ws.mlp_onnx, "--calib", ws.calib, "--data", ws.calib, "--json"],
    })
    for run in runs.values():
        assert run.returncode == 0, run.stderr
        json.loads(run.stdout)  # one JSON object and nothing else
        assert run.stderr.strip() == ""  # not a terminal: no progress to clutter scripts


def test_progress_is_shown_on_a_terminal(ws):
    """With stderr on a terminal, compile stages and the simulation bar appear there, never on stdout."""
    import pty

    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "SNC_DEBUG"}
    proc = subprocess.run(
        snc_command() + ["simulate", str(ws.mlp_onnx), "--calib", str(ws.calib), "--data", str(ws.calib), "--json"],
        stdout=subprocess.PIPE, stderr=slave, env=env, timeout=120,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    terminal = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0, terminal
    json.loads(proc.stdout)
    assert "snc: pass convert" in terminal and "simulating" in terminal