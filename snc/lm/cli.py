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
