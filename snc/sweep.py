"""``snc sweep CONFIG.toml``: a grid of compile / estimate settings over one model and dataset,
each point run as its own task, results written as they arrive to a file keyed by the settings
(a rerun computes only the missing points), then a table (CSV and JSON), an accuracy-vs-energy
Pareto plot and the best point per chip.

Config (TOML; paths relative to the config file)::

    model = "digits_cnn.pt2"            # any model snc reads, or a compiled .snir
    data = "x_test.npy"                 # samples to estimate on
    labels = "y_test.npy"               # their labels (accuracy)
    calib = "x_train.npy"               # calibration samples for compiling
    out = "sweep-out"                   # results folder (default: <config stem>-sweep)
    [grid]                              # every combination of these lists
    timesteps = [16, 32, 64]
    weight_bits = [4, 6, 8]
    hw = ["loihi", "loihi2"]
    # prune = [true, false]; percentile = [99.0, 99.9]

or ``[[points]]`` tables instead of ``[grid]`` (an explicit list). Settings: ``timesteps``,
``weight_bits``, ``hw``, ``prune``, ``percentile``. Each point compiles the model for its chip
(quantised to its weight bits, pruned or not) and estimates it on the data.

Points run in this process, or as Dask tasks (``client``; retried twice when a worker fails).
The results file (``results.jsonl``) gets one line per finished point, appended and flushed as
it arrives; its key is a hash of the point's settings and the inputs' contents, so a point is
never computed twice for the same model and data, and a line cut short by a crash is ignored.
"""
from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable


from .errors import InvalidOption

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

SETTINGS = {  # setting -> (type check, what it accepts)
    "timesteps": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "an integer >= 1"),
    "weight_bits": (lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 16, "an integer 1..16"),
    "hw": (lambda v: isinstance(v, str) and bool(v), "a hardware profile name"),
    "prune": (lambda v: isinstance(v, bool), "true or false"),
    "percentile": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 100, "a number in (0, 100]"),
}
DEFAULTS = {"timesteps": 64, "weight_bits": 8, "hw": "loihi", "prune": True, "percentile": 99.9}
FILES = ("model", "data", "labels", "calib")


@dataclass
class SweepConfig:
    path: Path
    model: Path
    data: Path
    labels: Path | None
    calib: Path | None
    out: Path
    points: list[dict[str, Any]] = field(default_factory=list)


def _fail(msg: str, path: Path) -> InvalidOption:
    return InvalidOption(f"{path}: {msg}")


def load_config(path: str | os.PathLike) -> SweepConfig:
    """Read and check a sweep config; every problem is one line naming the file and the key."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except FileNotFoundError:
        raise _fail("no such file", path) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise _fail(f"not a valid TOML file ({exc})", path) from None
    known = set(FILES) | {"out", "grid", "points"}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise _fail(f"unknown key(s) {', '.join(unknown)}; expected {', '.join(sorted(known))}", path)
    for key in ("model", "data"):
        if not isinstance(doc.get(key), str):
            raise _fail(f"'{key}' must name a file", path)
    files = {}
    for key in FILES:
        value = doc.get(key)
        if value is None:
            files[key] = None
            continue
        if not isinstance(value, str):
            raise _fail(f"'{key}' must name a file", path)
        f = (path.parent / value).resolve()
        if not f.is_file():
            raise _fail(f"'{key}': no such file {f}", path)
        files[key] = f
    if ("grid" in doc) == ("points" in doc):
        raise _fail("give either a [grid] table or a [[points]] list", path)
    if "grid" in doc:
        grid = doc["grid"]
        if not isinstance(grid, dict) or not grid:
            raise _fail("[grid] must be a table of lists", path)
        for key, values in grid.items():
            if not isinstance(values, list) or not values:
                raise _fail(f"grid.{key} must be a non-empty list", path)
        keys = sorted(grid)
        raw = [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]
    else:
        raw = doc["points"]
        if not isinstance(raw, list) or not all(isinstance(p, dict) for p in raw) or not raw:
            raise _fail("[[points]] must be a non-empty list of tables", path)
    points = []
    for i, p in enumerate(raw):
        for key, value in p.items():
            if key not in SETTINGS:
                raise _fail(f"point {i}: unknown setting {key!r}; settings: {', '.join(SETTINGS)}", path)
            ok, expect = SETTINGS[key]
            if not ok(value):
                raise _fail(f"point {i}: {key} must be {expect}, got {value!r}", path)
        points.append({**DEFAULTS, **p})
    out = doc.get("out")
    out = (path.parent / out) if isinstance(out, str) else path.parent / f"{path.stem}-sweep"
    return SweepConfig(path, files["model"], files["data"], files["labels"], files["calib"], out.resolve(), points)


def _digest(paths: Iterable[Path | None]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(b"-" if p is None else hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def point_key(point: dict[str, Any], inputs: str) -> str:
    """Key of a point: its settings (canonical JSON) and the digest of the model and data."""
    text = json.dumps({k: point[k] for k in sorted(point)}, sort_keys=True) + inputs
    return hashlib.sha256(text.encode()).hexdigest()[:20]


class ResultsStore:
    """Append-only JSON-lines file of finished points ({key, point, result})."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def done(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        if not self.path.exists():
            return out
        for line in self.path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash: that point runs again
            if isinstance(row, dict) and "key" in row and "result" in row:
                out[row["key"]] = row
        return out

    def add(self, key: str, point: dict[str, Any], result: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as fh:
            fh.write(json.dumps({"key": key, "point": point, "result": result}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def run_point(point: dict[str, Any], model: str, data: str, labels: str | None, calib: str | None) -> dict[str, Any]:
    """Compile the model with the point's settings and estimate it on the data (one task)."""
    from .data import load_labels, load_samples
    from .estimate import estimate
    from .frontends import load_model
    from .hw import load_profile
    from .pipeline import compile as compile_graph

    x = load_samples(data)
    y = load_labels(labels, len(x)) if labels else None
    cal = load_samples(calib) if calib else x
    graph = load_model(model)
    passes = ["fold-bn", "fold-affine", "convert", "balance", "quantize"] + (["prune"] if point["prune"] else []) + ["map"]
    snn = compile_graph(graph, cal, passes=passes, timesteps=int(point["timesteps"]), percentile=float(point["percentile"]),
                        hw=load_profile(point["hw"]), weight_bits=int(point["weight_bits"]), verify=False)
    est = estimate(snn, x, labels=y, hw=[point["hw"]], timesteps=int(point["timesteps"]), calibration=cal)
    t = est.doc["totals"]
    return {"accuracy": est.doc["accuracy"], "energy_j": t["energy_j"], "dynamic_energy_j": t["dynamic_energy_j"],
            "static_energy_j": t["static_energy_j"], "latency_s": t["latency_s"], "cores": t["cores_used"],
            "chips": t["chips"], "synops": t["synops"], "activation_sparsity": t["activation_sparsity"],
            "samples": t["samples"]}


def run_sweep(config: SweepConfig, client: Any = None, progress: Callable[[int, int], None] | None = None,
              runner: Callable[..., dict[str, Any]] = run_point) -> list[dict[str, Any]]:
    """Run the points not yet in the results file (here, or as Dask tasks with ``client``) and
    return every point's row (settings + results), in the config's order."""
    store = ResultsStore(config.out / "results.jsonl")
    inputs = _digest([config.model, config.data, config.labels, config.calib])
    keys = [point_key(p, inputs) for p in config.points]
    done = store.done()
    todo = [(k, p) for k, p in zip(keys, config.points) if k not in done]
    args = [str(config.model), str(config.data), str(config.labels) if config.labels else None,
            str(config.calib) if config.calib else None]
    finished = len(config.points) - len(todo)
    if progress:
        progress(finished, len(config.points))
    if client is None:
        for k, p in todo:
            store.add(k, p, runner(p, *args))
            finished += 1
            if progress:
                progress(finished, len(config.points))
    elif todo:
        from distributed import as_completed

        futures = {client.submit(runner, p, *args, key=f"snc-sweep-{k}", retries=2, pure=False): (k, p) for k, p in todo}
        for fut in as_completed(futures):
            k, p = futures[fut]
            store.add(k, p, fut.result())
            finished += 1
            if progress:
                progress(finished, len(config.points))
    done = store.done()
    return [{**p, **done[k]["result"], "key": k} for k, p in zip(keys, config.points)]


def pareto(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows no other row beats on both energy (lower) and accuracy (higher), by energy."""
    front = []
    for r in rows:
        acc = r.get("accuracy") or 0.0
        if not any((o.get("accuracy") or 0.0) >= acc and o["energy_j"] <= r["energy_j"]
                   and ((o.get("accuracy") or 0.0) > acc or o["energy_j"] < r["energy_j"]) for o in rows):
            front.append(r)
    return sorted(front, key=lambda r: r["energy_j"])


def best_per_chip(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per chip: the most accurate point, the least energy among equally accurate ones."""
    best: dict[str, dict[str, Any]] = {}
    for r in rows:
        b = best.get(r["hw"])
        if b is None or ((r.get("accuracy") or 0.0), -r["energy_j"]) > ((b.get("accuracy") or 0.0), -b["energy_j"]):
            best[r["hw"]] = r
    return best


COLUMNS = ("hw", "timesteps", "weight_bits", "prune", "percentile", "accuracy", "energy_j", "dynamic_energy_j",
           "static_energy_j", "latency_s", "cores", "chips", "synops", "activation_sparsity", "samples", "key")


def write_outputs(rows: list[dict[str, Any]], out: Path) -> dict[str, Path]:
    """results.csv, results.json (rows, Pareto front, best per chip) and pareto.png, each written
    to a temporary file and renamed."""
    from .ir.artifact import write_atomic

    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(COLUMNS), extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    write_atomic(out / "results.csv", buf.getvalue().encode())
    front = pareto(rows)
    doc = {"points": rows, "pareto": [r["key"] for r in front],
           "best_per_chip": {hw: r["key"] for hw, r in best_per_chip(rows).items()},
           "units": {"energy_j": "J per inference", "latency_s": "s per inference"}}
    write_atomic(out / "results.json", json.dumps(doc, indent=1).encode())
    paths = {"csv": out / "results.csv", "json": out / "results.json"}
    paths["plot"] = _plot(rows, front, out / "pareto.png")
    return paths


def _plot(rows: list[dict[str, Any]], front: list[dict[str, Any]], path: Path) -> Path:
    from .plots import _plt, _save

    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for hw in sorted({r["hw"] for r in rows}):
        pts = [r for r in rows if r["hw"] == hw]
        ax.scatter([r["energy_j"] for r in pts], [100 * (r.get("accuracy") or 0.0) for r in pts], label=hw, alpha=0.8)
        for r in pts:
            ax.annotate(f"T{r['timesteps']} w{r['weight_bits']}", (r["energy_j"], 100 * (r.get("accuracy") or 0.0)),
                        fontsize=6, xytext=(3, 2), textcoords="offset points")
    ax.plot([r["energy_j"] for r in front], [100 * (r.get("accuracy") or 0.0) for r in front], "k--", linewidth=1,
            label="Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel("energy per inference (J)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("accuracy vs energy (snc sweep)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def sweep(config: str | os.PathLike, *, client: Any = None, workers: int | None = None, cluster: str | None = None,
          progress: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
    """Python API of ``snc sweep``: run the config's missing points (in this process, or on
    ``client`` / a local cluster of ``workers`` / the scheduler at ``cluster``), write the
    outputs and return every point's row."""
    cfg = load_config(config)
    if client is None and workers is None and cluster is None:
        rows = run_sweep(cfg, progress=progress)
    else:
        from .distributed import connect

        with connect(client=client, workers=workers, cluster=cluster) as c:
            rows = run_sweep(cfg, client=c, progress=progress)
    write_outputs(rows, cfg.out)
    return rows
