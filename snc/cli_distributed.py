"""The command line's Dask side: sample shards for ``snc simulate|estimate --workers/--cluster``
(checks and the shards' progress bar) and ``snc sweep`` (snc/sweep.py). Registered on the main
group by ``snc.cli``."""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Any

import click

from snc.errors import SncError

from .cli_common import _interactive, _progress_bar, handle_errors, stage


def _sharding(workers: int | None, cluster: str | None) -> bool:
    """Whether to run in shards on Dask; checks the request (and that Dask is installed) first."""
    if workers is None and cluster is None:
        return False
    if workers is not None and cluster is not None:
        raise SncError("--workers starts a local cluster, --cluster uses a running one: give one of them")
    from snc.distributed import require_dask

    require_dask()
    return True


@contextmanager
def _shard_bar(x, workers: int | None, cluster: str | None):
    """A progress bar of finished shards; yields its progress(done, total) callback."""
    where = f"{workers} local worker(s)" if workers is not None else cluster
    stage(f"snc: simulating {len(x)} sample(s) in shards on {where}")
    state: dict[str, Any] = {"bar": None, "done": 0}

    def update(done: int, total: int) -> None:
        if state["bar"] is None:
            state["bar"] = click.progressbar(length=total, label="shards", file=sys.stderr, show_pos=True,
                                             hidden=not _interactive()).__enter__()
        state["bar"].update(done - state["done"])
        state["done"] = done

    try:
        yield update
    finally:
        if state["bar"] is not None:
            state["bar"].__exit__(None, None, None)


@click.command("sweep")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Run the points as tasks on a local Dask cluster of N worker processes (pip install snc[distributed]).")
@click.option("--cluster", "cluster", default=None, metavar="tcp://HOST:PORT",
              help="Run the points as tasks on the Dask scheduler at this address.")
@handle_errors
def sweep_cmd(config: str, workers: int | None, cluster: str | None) -> None:
    """Compile and estimate one model over a grid of settings (CONFIG.toml: timesteps, weight_bits,
    hw, prune, percentile); finished points are kept in OUT/results.jsonl and never recomputed.
    Writes OUT/results.csv, OUT/results.json and OUT/pareto.png; prints the best point per chip."""
    from snc.sweep import best_per_chip, load_config, pareto, run_sweep, write_outputs

    cfg = load_config(config)
    sharded = _sharding(workers, cluster)
    bar, update = _progress_bar(len(cfg.points), "points")
    with bar:
        if sharded:
            from snc.distributed import connect

            with connect(workers=workers, cluster=cluster) as client:
                rows = run_sweep(cfg, client=client, progress=update)
        else:
            rows = run_sweep(cfg, progress=update)
    paths = write_outputs(rows, cfg.out)
    front = {r["key"] for r in pareto(rows)}
    from snc.report import fmt_num, pct, table

    body = [[r["hw"], r["timesteps"], r["weight_bits"], "yes" if r["prune"] else "no", pct(r["accuracy"]) if r["accuracy"] is not None else "-",
             fmt_num(r["energy_j"]), fmt_num(r["latency_s"]), r["cores"], "*" if r["key"] in front else ""] for r in rows]
    click.echo(table(body, ["hw", "T", "weight bits", "prune", "accuracy", "energy (J)", "latency (s)", "cores", "Pareto"],
                     align="lrrlrrrrl"))
    for hw, r in best_per_chip(rows).items():
        click.echo(f"best on {hw}: T {r['timesteps']}, {r['weight_bits']}-bit weights, prune {'on' if r['prune'] else 'off'}: "
                   f"accuracy {pct(r['accuracy']) if r['accuracy'] is not None else '-'}, {fmt_num(r['energy_j'])} J per inference")
    click.echo(f"wrote {paths['csv']}, {paths['json']}, {paths['plot']}")
