"""``snc lm``: the language-model tools from the command line (registered by snc/cli.py)."""
from __future__ import annotations

import json

import click


def _errors(fn):
    from snc.cli import handle_errors

    return handle_errors(fn)


@click.group("lm")
def lm_group() -> None:
    """Spiking language models: long-context cost and the chips an LM's weights need
    (docs/spiking_lm.md)."""


def _presets(names: tuple[str, ...]):
    from snc.errors import InvalidOption
    from snc.lm.longctx import PRESETS

    for name in names:
        if name not in PRESETS:
            raise InvalidOption(f"unknown preset {name!r} (use one of {', '.join(PRESETS)})")
    return {name: PRESETS[name] for name in (names or tuple(PRESETS))}


@lm_group.command("longctx")
@click.option("--preset", "presets", multiple=True, help="a configuration (repeatable; default: all presets)")
@click.option("--plot", type=click.Path(dir_okay=False), help="write the TTFT / memory plot here (PNG)")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="write every row here")
@_errors
def longctx_cmd(presets: tuple[str, ...], plot: str | None, json_path: str | None) -> None:
    """Operations, state memory, time to first token and energy for softmax against the
    preset's hybrid attention, from 1 k to 4 M tokens (formulas: snc/lm/longctx.py)."""
    from snc.ir.artifact import write_atomic
    from snc.lm import longctx

    results = {name: longctx.compare(cfg) for name, cfg in _presets(presets).items()}
    for name, rows in results.items():
        click.echo(f"## {name}: {longctx.PRESETS[name].notes}\n\n{longctx.table(rows)}\n")
    if json_path:
        from pathlib import Path

        write_atomic(Path(json_path), json.dumps(results, indent=1).encode())
        click.echo(f"wrote {json_path}")
    if plot:
        longctx.plot(results, plot)
        click.echo(f"plot: {plot}")


@lm_group.command("footprint")
@click.option("--preset", "presets", multiple=True, help="a configuration (repeatable; default: all presets)")
@click.option("--hw", default="loihi2", show_default=True, help="neuromorphic chip profile")
@click.option("--weight-bits", type=click.IntRange(1, 32), default=8, show_default=True)
@click.option("--no-head", is_flag=True, help="leave the LM head out (run it on the host)")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@_errors
def footprint_cmd(presets: tuple[str, ...], hw: str, weight_bits: int, no_head: bool, as_json: bool) -> None:
    """Cores and chips that an LM's projection weights need as synapses (snc/lm/footprint.py)."""
    from snc.lm.footprint import footprint

    rows = [footprint(cfg, hw, weight_bits, head=not no_head) for cfg in _presets(presets).values()]
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    for r in rows:
        extra = f"; {r['chips_by_synapse_count']} by the chip's synapse count" if "chips_by_synapse_count" in r else ""
        click.echo(f"{r['model']}: {r['projection_weights']:,} weights ({r['weight_bits']} bits) -> {r['cores']:,} "
                   f"{r['hw']} cores, {r['chips']} chips by synaptic memory{extra}")


# --- language models through snc compile / simulate / estimate (called by snc/cli.py) ----------

def _tokens(graph, path: str, what: str, limit: int | None = None):
    from snc.cli import _with_file
    from snc.data import load_samples

    (inp,) = graph.input_names
    with _with_file(path):
        x = graph.nodes[inp].conform(load_samples(path), what)
    return x if limit is None else x[:limit]


def compile_lm(graph, out, calib: str | None, passes: list[str] | None, options: dict, as_json: bool, target: str,
               t0: float) -> None:
    """``snc compile`` of a language model: the spike-code pass (or --passes), an artifact."""
    import time

    from snc.cli import _with_file, stage
    from snc.errors import SncError
    from snc.ir import save
    from snc.pipeline import compile as compile_graph

    if target != "snir":
        raise SncError("a language model compiles to a .snir artifact (--target snir); Lava runs single coded projections "
                       "(snc.lm.lower)")
    x = None
    if calib is not None:
        stage(f"snc: reading calibration tokens {calib}")
        x = _tokens(graph, calib, "calib")
    with _with_file(calib):
        g = compile_graph(graph, x, passes=passes, progress=lambda name: stage(f"snc: pass {name}"), **options)
    save(g, out)
    stage(f"snc: wrote {out} ({time.perf_counter() - t0:.1f} s)")
    coders = [n for n in g.topological_order() if g.nodes[n].kind == "SpikeCode"]
    if as_json:
        doc = {"output": str(out), "seconds": round(time.perf_counter() - t0, 4), "passes": g.meta.get("pass_times", []),
               "report": g.meta.get("report", []), "spike_code": g.meta.get("spike_code"),
               "coders": [{"name": n, "coding": g.nodes[n].coding, "k": g.nodes[n].k, "steps": g.nodes[n].steps} for n in coders]}
        click.echo(json.dumps(doc, indent=1, default=str))
        return
    for entry in g.meta.get("report", []):
        click.echo(f"  [{entry['pass']}] {entry['message']}")
    from snc.report import table

    rows = [[n, g.nodes[n].coding, f"{g.nodes[n].k:g}", g.nodes[n].steps or "per batch",
             ", ".join(g.users_of(n))] for n in coders]
    click.echo(table(rows, ["coder", "coding", "k", "steps", "feeds"]))


def simulate_lm(graph, artifact: str, data_path: str, labels_path: str | None, limit: int | None, batch_size: int | None,
                as_json: bool) -> None:
    """``snc simulate`` of a language model: perplexity, next-token accuracy, events per token."""
    from snc.backends.sim.sequence import simulate_sequence
    from snc.cli import _progress_bar, _with_file

    x = _tokens(graph, data_path, "data", limit)
    y = _tokens(graph, labels_path, "labels", limit) if labels_path else None
    bar, update = _progress_bar(len(x), "simulating")
    with bar, _with_file(artifact):
        r = simulate_sequence(graph, x, labels=y, batch_size=batch_size or 16, progress=update)
    coded = [p for p in r.projections.values() if p.coder]
    entries = sum(p.entries for p in coded)
    doc = {"sequences": int(len(x)), "tokens": r.tokens, "loss": r.loss, "perplexity": r.perplexity, "accuracy": r.accuracy,
           "events_per_token": r.events / max(1, r.tokens),
           "spikes_per_channel": (sum(p.events for p in coded) / entries) if entries else None,
           "coding": coded[0].coding if coded else None, "k": coded[0].k if coded else None,
           "steps": max((p.steps for p in coded), default=0),
           "projections": [p.as_dict() for p in r.projections.values()], "notes": r.notes}
    if as_json:
        click.echo(json.dumps(doc, indent=1))
        return
    click.echo(f"{doc['sequences']} sequence(s), {r.tokens} tokens; coding {doc['coding'] or 'none (analog projections)'}"
               + (f", k = {doc['k']:g}, up to {doc['steps']} steps" if coded else ""))
    if r.perplexity is not None:
        click.echo(f"perplexity {r.perplexity:.4f} (loss {r.loss:.4f} nats/token), next-token accuracy {r.accuracy:.2%}")
    if coded:
        click.echo(f"events per token {doc['events_per_token']:,.1f}; spikes per channel {doc['spikes_per_channel']:.3f}")
    for n in r.notes:
        click.echo(f"note: {n}")


def estimate_lm(graph, model: str, data_path: str, labels_path: str | None, limit: int | None, hw: tuple[str, ...],
                baseline: str | None, batch_size: int | None, as_json: bool, plot_dir: str | None) -> None:
    """``snc estimate`` (--per-token) of a language model."""
    from pathlib import Path

    from snc.cli import _jsonable, _progress_bar, _with_file
    from snc.lm.estimate import DEFAULT_HW, estimate_sequence, format_per_token

    x = _tokens(graph, data_path, "data", limit)
    y = _tokens(graph, labels_path, "labels", limit) if labels_path else None
    bar, update = _progress_bar(len(x), "simulating")
    with bar, _with_file(model):
        doc = estimate_sequence(graph, x, labels=y, hw=tuple(hw) or DEFAULT_HW, baseline=baseline or "fp16",
                                batch_size=batch_size or 16, progress=update)
    written = []
    if plot_dir is not None:
        from snc.plots import per_token

        written.append(per_token(doc, Path(plot_dir) / "per_token.png"))
    if as_json:
        click.echo(json.dumps(_jsonable(doc), indent=1))
        return
    click.echo(format_per_token(doc))
    for p in written:
        click.echo(f"plot: {p}")
