"""What every ``snc`` command shares: one-line errors (exit code 2), progress on a terminal only,
reading a model or an artifact (with a NIR model's discretisation options) and data files, and
JSON-ready values. The commands themselves are in snc/cli.py."""
from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Any, Callable

import click

from snc.errors import SncError

EXIT_ERROR = 2


def _fail(message: str) -> None:
    click.echo(f"snc: error: {message}", err=True)
    sys.exit(EXIT_ERROR)


def handle_errors(fn: Callable) -> Callable:
    """Turn every error into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SncError as exc:
            if os.environ.get("SNC_DEBUG"):
                raise
            _fail(str(exc))
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except KeyboardInterrupt:
            _fail("interrupted")
        except MemoryError:
            _fail("out of memory (try a smaller --batch-size)")
        except Exception as exc:  # a bug or an unforeseen input: still one line, no traceback
            if os.environ.get("SNC_DEBUG"):
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            _fail(f"internal error ({type(exc).__name__}: {first}); rerun with SNC_DEBUG=1 for a traceback")

    return wrapper


def _interactive() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def stage(message: str) -> None:
    """Progress lines go to stderr on a terminal only, so that scripts see nothing on stderr but
    the single error line when something fails."""
    if _interactive():
        click.echo(message, err=True)


def _check_passes(passes: str | None) -> list[str] | None:
    if not passes:
        return None
    from snc.passes import get

    names = [p.strip() for p in passes.split(",") if p.strip()]
    if not names:
        raise SncError("--passes names no pass (see `snc passes`)")
    for name in names:
        get(name)
    return names


def _with_file(path: str | None):
    """Attach ``path`` to typed errors raised inside (data errors name the data file)."""
    class _Ctx:
        def __enter__(self):
            return self

        def __exit__(self, exc_type, exc, tb):
            if isinstance(exc, SncError) and path is not None:
                exc.with_file(path)
            return False

    return _Ctx()


class _BackendChoice(click.ParamType):
    """A built-in or installed (snc.backends entry point) backend name, looked up when the command
    runs (so a plug-in installed after snc was imported counts); names only, nothing imported."""

    name = "backend"

    def __init__(self, exporters: bool = False) -> None:
        self.exporters = exporters

    def names(self) -> list[str]:
        from snc import registry

        names = registry.backend_names()
        if self.exporters:  # built-ins without an exporter (snc's simulator) are not targets
            names = [n for n in names if n not in registry.BUILTIN_BACKENDS or registry.BUILTIN_BACKENDS[n].export is not None]
        return names

    def get_metavar(self, param, ctx=None) -> str:
        return "[" + "|".join(self.names()) + "]"

    def convert(self, value, param, ctx):
        names = self.names()
        if value not in names:
            self.fail(f"{value!r} is not one of {', '.join(names)}", param, ctx)
        return value


def _load_graph(path: str, **nir_options: Any):
    """The model at ``path``; ``nir_options`` (dt, reset, reset_timing) reach the NIR frontend."""
    nir_options = {k: v for k, v in nir_options.items() if v is not None}
    if nir_options and Path(path).suffix.lower() == ".nir" and Path(path).is_file():
        from snc.frontends.nir import load_nir

        return load_nir(path, **nir_options)
    if nir_options:
        raise SncError(f"--dt, --reset and --reset-timing apply to NIR (.nir) models; {path} is not one")
    from snc.frontends import load_model

    return load_model(path)


def _compiled(path: str, calib: str | None, percentile: float, timesteps: int | None, passes: str | None = None,
              **nir_options: Any):
    """An artifact as is, or a model compiled on the fly with the calibration data."""
    from snc.data import load_samples
    from snc.pipeline import compile as compile_graph

    graph = _load_graph(path, **nir_options)
    if graph.is_spiking and any(n.role == "readout" for n in graph.nodes.values()):
        return graph
    from snc.ir.sequence import is_sequence_model

    if is_sequence_model(graph) and (calib is None or graph.meta.get("spike_code")):
        if not graph.meta.get("spike_code"):
            stage(f"snc: {path} is not spike-coded (no --calib): its projections run analog, as the ANN baseline")
        return graph
    if calib is None:
        raise SncError(f"{path} is a model, not a compiled artifact: pass --calib X.npy to compile it on the fly")
    names = _check_passes(passes)
    x = load_samples(calib)
    with _with_file(calib):
        return compile_graph(graph, x, passes=names, percentile=percentile, timesteps=timesteps or 64,
                             progress=lambda name: stage(f"snc: pass {name}"))


def _write_record(graph, spikes: dict, path: Path) -> None:
    """Spike trains {node: (steps, samples, *shape)} to an .npz, written atomically."""
    import io

    import numpy as np

    from snc.ir.artifact import write_atomic

    shapes = graph.infer_shapes()
    arrays = {name: s.reshape(s.shape[:2] + tuple(shapes[name])) for name, s in spikes.items() if name in shapes}
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    write_atomic(path, buf.getvalue())


def _samples(graph, data_path: str, labels_path: str | None, limit: int | None, timesteps: int | None,
             steps_first: bool = False):
    """Load --data (and --labels), keep the first --limit, shape the samples for the graph's input."""
    from snc.data import load_labels, load_samples

    x = load_samples(data_path)
    if steps_first:  # (steps, samples, ...) -> snc's (samples, steps, ...)
        if x.ndim < 3:
            raise SncError(f"{data_path}: --input-spikes expects (steps, samples, *input_shape), got {x.shape}")
        x = x.swapaxes(0, 1)
    y = load_labels(labels_path, len(x)) if labels_path else None
    if limit is not None:
        x = x[:limit]
        y = None if y is None else y[:limit]
    (input_name,) = graph.input_names[:1] or [None]
    with _with_file(data_path):
        if input_name is not None:
            x = graph.nodes[input_name].conform(x, input_name, timesteps)
    return x, y


def nir_options(fn: Callable) -> Callable:
    """--dt, --reset and --reset-timing: how a NIR (.nir) model is discretised (docs/nir.md)."""
    fn = click.option("--reset-timing", type=click.Choice(["immediate", "next_step"]), default=None,
                      help="NIR input: next_step applies a spike's reset after the next step's input (snnTorch's "
                           "Synaptic, RLeaky).")(fn)
    fn = click.option("--reset", "nir_reset", type=click.Choice(["zero", "subtract"]), default=None,
                      help="NIR input: the reset NIR cannot carry (default: zero, NIR's reset to v_reset = 0).")(fn)
    return click.option("--dt", type=click.FloatRange(0, min_open=True), default=None,
                        help="NIR input: the time step in seconds (default 1e-4, forward Euler).")(fn)


def _progress_bar(total: int, label: str):
    bar = click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True, hidden=not _interactive())
    state = {"done": 0}

    def update(done: int, _total: int) -> None:
        bar.update(done - state["done"])
        state["done"] = done

    return bar, update


def _jsonable(value: Any) -> Any:
    import numpy as np

    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 16 else f"array{tuple(value.shape)}"
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None  # JSON has no NaN/inf
    return value
