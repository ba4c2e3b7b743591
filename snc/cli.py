"""The ``snc`` command line.

    snc compile MODEL -o OUT.snir [--calib X.npy] [--timesteps T] [--percentile P] [--passes a,b,c]
    snc simulate ARTIFACT --data X.npy [--labels Y.npy] [--timesteps T] [--batch-size B] [--fixed-point] [--json]
                 [--workers N | --cluster tcp://HOST:PORT]   (sample shards on Dask: docs/distributed.md)
    snc inspect ARTIFACT [--json] [--mapping [--hw NAME] [--plot DIR]]
    snc estimate MODEL_OR_ARTIFACT --data X.npy [--labels Y.npy] [--hw NAME|FILE]... [--baseline NAME] [--json] [--plot DIR]
    snc export ARTIFACT --to lava -o DIR | --to nir -o X.nir | --to netx -o X.net
    snc hw list | snc hw show NAME
    snc sweep CONFIG.toml [--workers N | --cluster tcp://HOST:PORT]   (a grid of settings: table, Pareto plot)
    snc passes
    snc lm longctx | snc lm footprint

Errors are one line on stderr naming the file and node, with exit code 2; no traceback
(set SNC_DEBUG=1 to see one), and no half-written output file.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from snc.errors import SncError

from .cli_distributed import _shard_bar, _sharding, sweep_cmd
from .cli_common import (  # noqa: F401  (EXIT_ERROR and the helpers stay importable from snc.cli)
    EXIT_ERROR, _BackendChoice, _check_passes, _compiled, _interactive, _jsonable, _load_graph, _progress_bar, _samples,
    _with_file, _write_record, handle_errors, nir_options, stage,
)

@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="snc")
def main() -> None:
    """snc - the spiking neuromorphic compiler.

    Turns a trained ANN (ONNX, or a torch.export .pt2) into a spiking network, reads spiking
    networks other tools wrote (NIR .nir, lava-dl netx .net), spike-codes decoder language models
    (a .pt2 whose input is token ids), simulates them and reports accuracy, spikes, synaptic
    operations and energy; exports to Lava, NIR and netx.
    """


def _pass_list(passes: str | None, quantize: str, prune: bool, hw: str | None) -> list[str] | None:
    """The passes to run: ``--passes`` as given, else the default pipeline adjusted by the flags."""
    names = _check_passes(passes)
    if names is not None:
        return names
    from snc.passes import DEFAULT_PIPELINE

    names = list(DEFAULT_PIPELINE)
    if quantize == "none":
        names.remove("quantize")
    if not prune:
        names.remove("prune")
    return names


def _quantize_bits(quantize: str, weight_bits: int | None) -> int | None:
    if weight_bits is not None:
        return weight_bits
    return {"int8": 8, "int4": 4, "int9": 9, "int2": 2}.get(quantize)


@main.command("compile")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Output artifact (.snir).")
@click.option("--calib", type=click.Path(dir_okay=False), help="Calibration samples (.npy/.npz, (N, *input_shape)).")
@click.option("--calib-labels", type=click.Path(dir_okay=False), help="Labels of the calibration samples: the report then gives accuracy before/after quantisation and pruning.")
@click.option("--timesteps", type=click.IntRange(min=1), default=64, show_default=True, help="Default simulation length stored in the artifact.")
@click.option("--percentile", type=click.FloatRange(0, 100, min_open=True), default=99.9, show_default=True, help="Activation percentile for threshold balancing (100 = max).")
@click.option("--passes", "passes", default=None, help="Comma-separated pass names in order (see `snc passes`); overrides the flags below.")
@click.option("--hw", default=None, help="Target chip (profile name or TOML file) for quantize, prune and map; the network must fit it. Default: loihi, best effort.")
@click.option("--quantize", type=click.Choice(["int8", "int4", "int2", "int9", "none"]), default="int8", show_default=True, help="Weight precision (signed mantissa bits), or none for a float network.")
@click.option("--weight-bits", type=click.IntRange(2, 9), default=None, help="Weight mantissa bits including sign (overrides --quantize).")
@click.option("--scaling", type=click.Choice(["layer", "channel"]), default="layer", show_default=True, help="One weight scale per layer, or per output channel (absorbed into per-neuron thresholds).")
@click.option("--prune/--no-prune", default=True, show_default=True, help="Remove what provably never works for any input in range: zero synapses, neurons that cannot reach threshold (interval bounds), neurons reaching no output.")
@click.option("--prune-activity", is_flag=True, help="Also remove neurons that never spike on the calibration data (not proved for unseen inputs; with --calib-labels the report gives accuracy on a held-back part).")
@click.option("--prune-sparsity", type=click.FloatRange(0, 1, max_open=True), default=None, help="Also set this fraction of the smallest weights of each layer to zero.")
@click.option("--input-range", default=None, metavar="LO,HI", help="Range of every input value, for provable pruning (default: the calibration data's range).")
@click.option("--host-maxpool/--no-host-maxpool", default=True, show_default=True, help="Run a max pool that follows an analog-input layer on the host, before the neurons (exact, 1/k^2 of the neurons); --no-host-maxpool builds every max pool from spiking units.")
@click.option("--verify", is_flag=True, help="Prove passes by simulation (quantize: float vs fixed point; prune: re-simulation under both timings) and cost prune's savings.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: passes [{name, seconds, changes}], report, populations.")
@click.option("--target", type=click.Choice(["snir", "lava"]), default="snir", show_default=True,
              help="snir: an artifact file; lava: a runnable Lava program folder at -o.")
@click.option("--coding", type=click.Choice(["binary", "ternary", "bitwise", "graded", "bitwise_ternary"]), default="ternary",
              show_default=True, help="Language models: spike coding of every projection's input (--calib: token ids (N, L) .npy).")
@click.option("--k", "k", type=click.FloatRange(0, min_open=True), default=3.0, show_default=True,
              help="Language models: threshold divisor, V_th = mean(|x|)/k per token.")
@click.option("--max-count", type=click.IntRange(min=1), default=None, help="Language models: clip counts to this magnitude.")
@click.option("--payload-bits", type=click.IntRange(8, 24), default=24, show_default=True,
              help="Language models, graded coding: payload bits per event (Loihi 2: 8 to 24); larger counts are clipped.")
@click.option("--w8", is_flag=True, help="Language models: W8ASpike weights (INT8 per output row and group of 128 inputs).")
@click.option("--exclude", default=None, metavar="NAMES", help="Language models: comma-separated projections whose input stays analog (e.g. the LM head).")
@nir_options
@handle_errors
def compile_cmd(model: str, output: str, calib: str | None, calib_labels: str | None, timesteps: int, percentile: float,
                passes: str | None, hw: str | None, quantize: str, weight_bits: int | None, scaling: str, prune: bool,
                prune_activity: bool, prune_sparsity: float | None, input_range: str | None, host_maxpool: bool,
                verify: bool, as_json: bool, target: str, coding: str, k: float, max_count: int | None, payload_bits: int,
                w8: bool, exclude: str | None, dt: float | None, nir_reset: str | None, reset_timing: str | None) -> None:
    """Compile MODEL (.onnx, .pt2) into a spiking network artifact (.snir).

    Default passes: fold-bn, fold-affine, convert, balance, quantize, prune, map (`snc passes`);
    for a language model (a .pt2 whose input is token ids): spike-code, with --coding, --k and
    --calib token ids."""
    from snc.data import load_labels, load_samples
    from snc.ir import save
    from snc.pipeline import compile as compile_graph
    from snc.report import table

    out = Path(output)
    if target == "snir" and out.suffix.lower() != ".snir":
        raise SncError(f"output must end in .snir, got {out.name!r}")
    names = _pass_list(passes, quantize, prune, hw)
    options: dict[str, Any] = {"scaling": scaling}
    bits = _quantize_bits(quantize, weight_bits)
    if bits is not None:
        options["weight_bits"] = bits
    if hw is not None:
        from snc.hw import load_profile

        options["hw"] = load_profile(hw)
    if prune_sparsity:
        options["prune_sparsity"] = prune_sparsity
    if prune_activity:
        options["prune_activity"] = True
    if input_range is not None:
        options["input_range"] = _parse_range(input_range)
    if not host_maxpool:
        options["host_maxpool"] = False
    t0 = time.perf_counter()
    stage(f"snc: reading {model}")
    graph = _load_graph(model, dt=dt, reset=nir_reset, reset_timing=reset_timing)
    from snc.ir.sequence import is_sequence_model

    if is_sequence_model(graph):
        from snc.lm.cli import compile_lm

        lm_options = {"coding": coding, "k": k, "max_count": max_count, "w8": w8, "payload_bits": payload_bits,
                      "exclude": tuple(e.strip() for e in exclude.split(",") if e.strip()) if exclude else ()}
        compile_lm(graph, out, calib, _check_passes(passes), lm_options, as_json, target, t0)
        return
    if graph.is_spiking and passes is None:  # NIR, netx, .snir: already a spiking network
        stage("snc: the model is already a spiking network: no pass runs (choose some with --passes, e.g. quantize,map)")
        names = []
    _check_compile_request(names, options)
    x = None
    if calib is not None:
        stage(f"snc: reading calibration data {calib}")
        x = load_samples(calib)
        if calib_labels is not None:
            options["labels"] = load_labels(calib_labels, len(x))
    with _with_file(calib):
        snn = compile_graph(graph, x, passes=names, percentile=percentile, timesteps=timesteps, verify=verify or None,
                            progress=lambda name: stage(f"snc: pass {name}"),
                            pass_done=None if as_json else lambda t: click.echo(_pass_line(t)), **options)
    if target == "lava":
        from snc.backends.lava import export

        with _with_file(model):
            export(snn, out, timesteps=timesteps)
    else:
        save(snn, out)
    stage(f"snc: wrote {out} ({time.perf_counter() - t0:.1f} s)")
    if as_json:
        doc = {"output": str(out), "seconds": round(time.perf_counter() - t0, 4), "passes": snn.meta.get("pass_times", []),
               "simulations": snn.meta.get("compile", {}).get("simulations", []),
               "report": snn.meta.get("report", []), "notes": snn.meta.get("notes", []),
               "populations": [{"name": r["name"], "kind": r["kind"], "shape": list(r["shape"]), "neurons": r["neurons"]}
                               for r in snn.table() if r["neurons"]]}
        click.echo(json.dumps(_jsonable(doc), indent=1))
        return
    for note in snn.meta.get("notes", []):
        click.echo(f"note: {note}")
    report = snn.meta.get("report", [])
    if report:
        click.echo("compile report:")
        for entry in report:
            click.echo(f"  [{entry['pass']}] {entry['message']}")
    rows = [[r["name"], r["kind"], "x".join(map(str, r["shape"])), r["neurons"]] for r in snn.table() if r["neurons"]]
    click.echo(table(rows, ["population", "kind", "shape", "neurons"]))


def _parse_range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise SncError(f"--input-range must be LO,HI (two numbers), got {text!r}") from None
    if not lo <= hi:
        raise SncError(f"--input-range: LO must not exceed HI, got {text!r}")
    return lo, hi


def _check_compile_request(names: list[str] | None, options: dict[str, Any]) -> None:
    """Pass order and options are checked before the model is read (one line naming the pass)."""
    from snc.passes import DEFAULT_PIPELINE, get, validate_options

    passes = [get(n) for n in (names if names is not None else DEFAULT_PIPELINE)]
    validate_options(passes, options)


def _pass_line(t: dict[str, Any]) -> str:
    """One line per pass: name, seconds, what it changed (first change and how many more)."""
    changes = t.get("changes") or []
    what = changes[0] if changes else "no change"
    if len(what) > 110:
        what = what[:107] + "..."
    more = f" (+{len(changes) - 1} more)" if len(changes) > 1 else ""
    sims = f" [{t['simulations']} simulation(s)]" if t.get("simulations") else ""
    return f"pass {t['name']:<12} {t['seconds']:7.2f} s  {what}{more}{sims}"


@main.command("simulate")
@click.argument("artifact", type=click.Path(dir_okay=False))
@click.option("--data", "data_path", required=True, type=click.Path(dir_okay=False), help="Samples (.npy/.npz), (N, *input_shape).")
@click.option("--labels", "labels_path", type=click.Path(dir_okay=False), help="Integer labels (.npy/.npz), (N,).")
@click.option("--calib", type=click.Path(dir_okay=False), help="Calibration samples, to compile a model on the fly.")
@click.option("--timesteps", type=click.IntRange(min=1), default=None, help="Steps per sample (default: the artifact's).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Samples simulated together (default: 64, more for small networks).")
@click.option("--arithmetic", type=click.Choice(["float", "fixed"]), default=None,
              help="float32, or Loihi fixed point (needs a quantised graph). Default: the artifact's (fixed if it was quantised).")
@click.option("--fixed-point", is_flag=True, help="Same as --arithmetic fixed.")
@click.option("--timing", type=click.Choice(["sync", "delay"]), default=None,
              help="sync: layer-synchronous (default for snc); delay: one step per synapse (Loihi/Lava; always with --backend lava).")
@click.option("--backend", type=_BackendChoice(), default="snc", show_default=True,
              help="snc's event simulator, or the exported program run in Lava (.venv-lava or $SNC_LAVA_PYTHON).")
@click.option("--check", is_flag=True, help="With --backend lava: also run snc's simulator (delay timing) and compare every spike; exit 1 on any mismatch.")
@click.option("--lava-timeout", type=click.FloatRange(min=1), default=None, help="Seconds before the Lava run is stopped.")
@click.option("--percentile", type=click.FloatRange(0, 100, min_open=True), default=99.9, show_default=True, help="For on-the-fly compilation.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Simulate only the first N samples.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of rate-encoded inputs.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.option("--record", "record_path", type=click.Path(dir_okay=False), default=None,
              help="Write every population's spikes to this .npz, keyed by node name, shaped (steps, samples, *shape) (snc backend).")
@click.option("--input-spikes", is_flag=True, help="--data holds spikes laid out (steps, samples, *input_shape) (other simulators' layout).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Run sample shards on a local Dask cluster of N worker processes (pip install snc[distributed]); results are identical to one process.")
@click.option("--cluster", "cluster", default=None, metavar="tcp://HOST:PORT",
              help="Run sample shards on the Dask scheduler at this address (docs/distributed.md).")
@nir_options
@handle_errors
def simulate_cmd(artifact, data_path, labels_path, calib, timesteps, batch_size, arithmetic, fixed_point, timing, backend, check,
                 lava_timeout, percentile, limit, seed, as_json, record_path, input_spikes, dt, nir_reset, reset_timing, workers,
                 cluster) -> None:
    """Simulate ARTIFACT (.snir, or a model compiled on the fly with --calib) on --data."""
    from snc.backends.sim import simulate

    sharded = _sharding(workers, cluster)
    if check and backend != "lava":
        raise SncError("--check compares Lava with snc's simulator: use it with --backend lava")
    if backend == "lava" and timing == "sync":
        raise SncError("Lava delivers spikes with a one-step synaptic delay: --timing sync is not available with --backend lava")
    graph = _compiled(artifact, calib, percentile, timesteps, dt=dt, reset=nir_reset, reset_timing=reset_timing)
    from snc.ir.sequence import is_sequence_model

    if is_sequence_model(graph):
        from snc.lm.cli import simulate_lm

        if backend != "snc":
            raise SncError("language models run on snc's simulator only (--backend snc)")
        if sharded:
            raise SncError("--workers/--cluster shard image networks; language models run in one process")
        simulate_lm(graph, artifact, data_path, labels_path, limit, batch_size, as_json)
        return
    if fixed_point and arithmetic == "float":
        raise SncError("--fixed-point contradicts --arithmetic float")
    if fixed_point:
        arithmetic = "fixed"
    if arithmetic is None:  # the artifact's own arithmetic
        arithmetic = "fixed" if graph.meta.get("quantized") else "float"
    fixed_point = arithmetic == "fixed"
    if record_path is not None and (backend != "snc" or not record_path.lower().endswith(".npz")):
        raise SncError("--record writes a .npz of snc's own run (--backend snc)")
    x, y = _samples(graph, data_path, labels_path, limit, timesteps, steps_first=input_spikes)
    report = None
    if sharded and backend != "snc":
        raise SncError("--workers/--cluster run snc's own simulator in shards (--backend snc)")
    if backend == "lava":
        from snc.backends.lava import check as lava_check
        from snc.backends.lava import simulate_lava

        cfg = "fixed" if fixed_point else "float"
        stage(f"snc: running {len(x)} sample(s) in Lava ({cfg})")
        with _with_file(artifact):
            if check:
                result, _, report = lava_check(graph, x, timesteps=timesteps, cfg=cfg, labels=y, seed=seed, timeout=lava_timeout)
            else:
                result = simulate_lava(graph, x, timesteps=timesteps, cfg=cfg, labels=y, seed=seed, timeout=lava_timeout)
    elif backend != "snc":
        from snc import registry

        plugin = registry.backend(backend)
        if plugin.simulate is None:
            raise SncError(f"backend {backend!r} has no simulator")
        stage(f"snc: running {len(x)} sample(s) on {backend}")
        with _with_file(artifact):
            result = plugin.simulate(graph, x, labels=y, timesteps=timesteps, arithmetic="fixed" if fixed_point else "float32",
                                     timing=timing or "sync", seed=seed)
    else:
        recorders = []
        if record_path is not None:
            from snc.backends.sim.recorders import SpikeRecorder

            recorders.append(SpikeRecorder())
        options = dict(labels=y, timesteps=timesteps, batch_size=batch_size, arithmetic="fixed" if fixed_point else "float32",
                       timing=timing or "sync", seed=seed, recorders=recorders)
        if sharded:
            from snc.distributed import simulate_sharded

            with _shard_bar(x, workers, cluster) as update, _with_file(artifact):
                result = simulate_sharded(graph, x, progress=update, workers=workers, cluster=cluster, **options)
        else:
            bar, update = _progress_bar(len(x), "simulating")
            with bar, _with_file(artifact):
                result = simulate(graph, x, progress=update, **options)
        if record_path is not None:
            _write_record(graph, result.extra["spikes"], Path(record_path))
            stage(f"snc: wrote {record_path}")
    if as_json:
        doc = result.to_json()
        if report is not None:
            doc["check"] = report
        click.echo(json.dumps(_jsonable(doc), indent=1))
    else:
        from snc.report import format_simulation

        click.echo(format_simulation(result))
        if report is not None:
            first = report["first"]
            where = "" if first is None else (f"; first at population {first['population']!r}, sample {first['sample']}, "
                                             f"step {first['step']}, neuron {first['neuron']}")
            click.echo(f"check against snc's simulator: {report['mismatches']} mismatching spike(s){where}")
    if report is not None and report["mismatches"]:
        sys.exit(1)


@main.command("inspect")
@click.argument("artifact", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--mapping", "show_mapping", is_flag=True,
              help="Show the core mapping instead of the nodes: per core its layers, each resource against the core's "
                   "limit and the limit that bound it; cores, chips, the placement objective and the limits that bind.")
@click.option("--hw", default=None, help="With --mapping: map onto this profile (name or TOML) now instead of "
                                         "showing the stored mapping; a network that does not fit is an error naming the limit.")
@click.option("--plot", "plot_dir", type=click.Path(file_okay=False), help="With --mapping: also write the core-utilisation plot here.")
@nir_options
@handle_errors
def inspect_cmd(artifact: str, as_json: bool, show_mapping: bool, hw: str | None, plot_dir: str | None, dt: float | None,
                nir_reset: str | None, reset_timing: str | None) -> None:
    """Print the nodes of ARTIFACT (or of any model file) as a table; --mapping: its cores."""
    from snc.report import table

    graph = _load_graph(artifact, dt=dt, reset=nir_reset, reset_timing=reset_timing)
    if (hw or plot_dir) and not show_mapping:
        raise SncError("--hw and --plot apply to --mapping")
    if show_mapping:
        from snc.mapping_report import format_mapping, map_now, mapping_doc

        if hw is not None:
            if not graph.is_spiking:
                raise SncError(f"{artifact} is not a compiled (spiking) network; compile it first (snc compile)")
            graph = map_now(graph, hw)
        doc = mapping_doc(graph)
        if plot_dir:
            from snc.hw import load_profile
            from snc.plots import core_utilisation

            Path(plot_dir).mkdir(parents=True, exist_ok=True)
            path = core_utilisation(graph, load_profile(hw or doc["hw"]), Path(plot_dir) / f"core_utilisation_{doc['hw']}.png")
        if as_json:
            click.echo(json.dumps(_jsonable(doc), indent=1))
        else:
            click.echo(format_mapping(graph))
            if plot_dir:
                click.echo(f"wrote {path}")
        return
    rows = graph.table()
    if as_json:
        click.echo(json.dumps({"name": graph.name, "outputs": graph.outputs, "spiking": graph.is_spiking,
                               "nodes": rows, "meta": _jsonable(graph.meta)}, indent=1))
        return
    body = []
    for r in rows:
        params = ", ".join(f"{k}={v}" for k, v in r["params"].items() if k not in ("shape",))
        body.append([r["name"], r["kind"], "x".join(map(str, r["shape"])), r["neurons"], r["synapses"],
                     ",".join(r["inputs"]) or "-", params])
    click.echo(table(body, ["name", "kind", "shape", "neurons", "weights", "inputs", "parameters"], align="lllrrll"))
    click.echo(f"\n{len(rows)} nodes; outputs: {', '.join(graph.outputs)}; "
               f"{'spiking' if graph.is_spiking else 'ANN (not yet converted)'}")
    for note in graph.meta.get("notes", []) if graph.meta.get("source", {}).get("format") == "nir" else []:
        click.echo(f"note: {note}")


@main.command("estimate")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--data", "data_path", required=True, type=click.Path(dir_okay=False), help="Samples (.npy/.npz), (N, *input_shape).")
@click.option("--labels", "labels_path", type=click.Path(dir_okay=False), help="Integer labels (.npy/.npz), (N,).")
@click.option("--calib", type=click.Path(dir_okay=False), help="Calibration samples: compile a model on the fly; traffic estimate for mapping.")
@click.option("--hw", "hw", multiple=True, help="Hardware profile name or TOML file; repeat for side-by-side columns (default: loihi). See `snc hw list`.")
@click.option("--baseline", default=None, help="ANN baseline number format (fp32, fp16, int8, int32 of horowitz45, or PROFILE:FORMAT): the MAC and add energies of the compute level. Default: fp32; fp16 for a language model.")
@click.option("--device-baseline", "device_baseline", default=None, metavar="NAME", help="Also compare at the device level with the published measurements of reference network NAME (snc/hw/device_baselines.toml, e.g. nxtf-mnist-cnn).")
@click.option("--timesteps", type=click.IntRange(min=1), default=None, help="Steps per sample (default: the artifact's).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Samples simulated together (default: 64, more for small networks).")
@click.option("--percentile", type=click.FloatRange(0, 100, min_open=True), default=99.9, show_default=True, help="For on-the-fly compilation.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Use only the first N samples.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (energies in J per inference, latencies in s; per token for a language model).")
@click.option("--plot", "plot_dir", type=click.Path(file_okay=False), default=None, help="Write PNG figures to this folder.")
@nir_options
@click.option("--per-token", is_flag=True, help="Language models: the per-token table (sparsity, ACs vs MACs, energy per token per projection; default hw loihi2 and horowitz45, baseline fp16).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Run sample shards on a local Dask cluster of N worker processes (pip install snc[distributed]); results are identical to one process.")
@click.option("--cluster", "cluster", default=None, metavar="tcp://HOST:PORT",
              help="Run sample shards on the Dask scheduler at this address (docs/distributed.md).")
@handle_errors
def estimate_cmd(model, data_path, labels_path, calib, hw, baseline, device_baseline, timesteps, batch_size, percentile, limit,
                 as_json, plot_dir, dt, nir_reset, reset_timing, per_token,
                 workers, cluster) -> None:
    """Energy, latency and sparsity of MODEL on neuromorphic chips, per layer and per core,
    against ANN baselines at matching levels of inclusion: compute (45 nm arithmetic in the
    --baseline format), compute+memory (Lemaire et al. 2022) and, with --device-baseline, device
    (published measurements). JSON keys: layers[] (name, neurons, cores, spikes_per_sample,
    synops, energy_j, latency_s, ...), totals (energy_j, latency_s, synops, effective_acs,
    effective_macs, activation_sparsity, accuracy, ...), hw (..., unpublished), baseline (name,
    macs, energy_j, ratio: ANN compute only / SNN on the chip, mixed levels; levels: {level:
    ann_energy_j, snn_energy_j, ratio = ANN / SNN, what})."""
    from snc.baselines import device_reference
    from snc.data import load_samples
    from snc.estimate import estimate, format_table
    from snc.hw import load_profile

    sharded = _sharding(workers, cluster)
    if device_baseline is not None:
        device_reference(device_baseline)  # an unknown name: one line before any work
    graph = _compiled(model, calib, percentile, timesteps, dt=dt, reset=nir_reset, reset_timing=reset_timing)
    from snc.ir.sequence import is_sequence_model

    if is_sequence_model(graph):
        if device_baseline is not None:
            raise SncError("--device-baseline compares image networks with published measurements; this is a language model")
        from snc.lm.cli import estimate_lm

        if sharded:
            raise SncError("--workers/--cluster shard image networks; language models run in one process")
        estimate_lm(graph, model, data_path, labels_path, limit, hw, baseline, batch_size, as_json, plot_dir)
        return
    if per_token:
        raise SncError("--per-token reports language models (token input); this model is not one")
    if baseline is None:
        baseline = "fp32"
    profiles = [load_profile(h) for h in (hw or ("loihi",))]
    x, y = _samples(graph, data_path, labels_path, limit, timesteps)
    cal = None
    if calib is not None and graph.input_names:
        input_name = graph.input_names[0]
        with _with_file(calib):
            cal = graph.nodes[input_name].conform(load_samples(calib), input_name)
    options = dict(labels=y, hw=profiles, baseline=baseline, device_baseline=device_baseline, timesteps=timesteps,
                   batch_size=batch_size, calibration=cal, stage=stage)
    if sharded:
        from snc.distributed import estimate as estimate_sharded

        with _shard_bar(x, workers, cluster) as update, _with_file(model):
            est = estimate_sharded(graph, x, progress=update, workers=workers, cluster=cluster, **options)
    else:
        bar, update = _progress_bar(len(x), "simulating")
        with bar, _with_file(model):
            est = estimate(graph, x, progress=update, **options)
    written = []
    if plot_dir is not None:
        from snc.plots import estimate_plots

        written = estimate_plots(est, profiles, Path(plot_dir))
    if as_json:
        click.echo(json.dumps(_jsonable(est.doc), indent=1))
    else:
        click.echo(format_table(est.doc))
        for path in written:
            click.echo(f"plot: {path}")


@main.group("hw")
def hw_group() -> None:
    """Hardware profiles (every number with its source and status)."""


@hw_group.command("list")
@handle_errors
def hw_list() -> None:
    """List the hardware profiles: shipped ones, then installed snc.hw plug-ins."""
    from snc.hw import available_profiles, load_profile
    from snc.registry import hw_plugin_names

    plugins = set(hw_plugin_names())
    for name in available_profiles():
        p = load_profile(name)
        origin = " (plug-in)" if name in plugins else ""
        click.echo(f"{name.ljust(14)} {p.kind.ljust(13)} {p.title}{origin}")


@main.command("neurons")
@handle_errors
def neurons_cmd() -> None:
    """List the neuron models: built-in ones, then installed snc.neurons plug-ins, with their
    state and the consumers that run them."""
    from snc.report import format_neuron_models

    click.echo(format_neuron_models())


@hw_group.command("show")
@click.argument("name")
@handle_errors
def hw_show(name: str) -> None:
    """Show a profile: every quantity with unit, status and source (NAME or a TOML file)."""
    from snc.hw import describe, load_profile

    click.echo(describe(load_profile(name)))


@main.command("export")
@click.argument("artifact", type=click.Path(dir_okay=False))
@click.option("--to", "target", type=_BackendChoice(exporters=True), required=True,
              help="Target toolchain: lava, or an installed snc.backends plug-in.")
@click.option("-o", "--output", required=True, type=click.Path(), help="Output folder (lava) or file (nir: X.nir, netx: X.net).")
@click.option("--timesteps", type=click.IntRange(min=1), default=None, help="Default steps written into the program.")
@click.option("--dt", type=click.FloatRange(0, min_open=True), default=None, help="nir: seconds per snc step (default 1e-4).")
@handle_errors
def export_cmd(artifact: str, target: str, output: str, timesteps: int | None, dt: float | None) -> None:
    """Export a compiled ARTIFACT (.snir) for another toolchain: a runnable Lava program folder
    (--to lava), a NIR graph (--to nir -o X.nir; docs/nir.md), a lava-dl netx network (--to netx
    -o X.net; docs/netx.md), or what an installed snc.backends plug-in writes."""
    from snc import registry

    backend = registry.backend(target)
    if backend.export is None:
        raise SncError(f"backend {target!r} has no exporter")
    graph = _load_graph(artifact)
    if dt is not None and target != "nir":
        raise SncError("--dt applies to --to nir")
    if target == "nir" and Path(output).suffix.lower() != ".nir":
        raise SncError(f"a NIR export is one file ending in .nir, got {Path(output).name!r}")
    if target == "netx" and Path(output).suffix.lower() != ".net":
        raise SncError(f"a netx export is one file ending in .net, got {Path(output).name!r}")
    with _with_file(artifact):
        folder = backend.export(graph, output, timesteps=timesteps, **({"dt": dt} if dt else {}))
    if target == "lava":
        click.echo(f"wrote {folder} (run: python {folder}/run.py --steps N --input x.npy --out spikes.npz)")
    else:
        click.echo(f"wrote {folder}")
        if target == "nir":  # what NIR could not carry (kept exactly in the file's snc metadata)
            import nir

            report = str(nir.read(str(folder), type_check=False).metadata.get("snc_report", "") or "")
            for line in filter(None, report.splitlines()):
                click.echo(f"note: {line}")


@main.command("passes")
def passes_cmd() -> None:
    """List the compiler passes: what each requires and guarantees, and its options (use the
    names with `snc compile --passes`, the options with the Python API's `snc.compile(**options)`)."""
    from snc.report import format_passes

    click.echo(format_passes())


from snc.lm.cli import lm_group  # noqa: E402  (its commands use handle_errors above)
main.add_command(sweep_cmd)
main.add_command(lm_group)

if __name__ == "__main__":  # pragma: no cover
    main()
