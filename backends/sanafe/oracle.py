"""Running SANA-FE: a subprocess of the oracle interpreter, JSON in and out.

snc never imports ``sanafe`` (its wheel also puts top-level ``src/``, ``tests/`` and ``scripts/``
folders into site-packages). The interpreter is ``$SNC_ORACLE_PYTHON``, else the
``.venv-oracles`` that ``make oracles`` builds next to snc's source or in the working directory.
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from snc.errors import BackendError

RUNNER = Path(__file__).resolve().parent / "runner.py"
DEFAULT_TIMEOUT = 600.0


def oracle_python() -> str:
    """The interpreter that has sanafe: $SNC_ORACLE_PYTHON, else a .venv-oracles next to snc's
    source or in the working directory. Raises BackendError when there is none."""
    env = os.environ.get("SNC_ORACLE_PYTHON")
    if env:
        if not Path(env).exists():
            raise BackendError(f"SNC_ORACLE_PYTHON={env} does not exist")
        return env
    import snc

    for venv in (Path(snc.__file__).resolve().parents[1] / ".venv-oracles", Path.cwd() / ".venv-oracles"):
        py = venv / "bin" / "python"
        if py.exists():
            return str(py)
    raise BackendError("no oracle environment: run `make oracles` (builds .venv-oracles with sanafe 2.2.9) "
                       "or set SNC_ORACLE_PYTHON to an interpreter that has sanafe installed")


def run(description: dict[str, Any], *, python: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
    """Simulate a description (``network.describe``) in SANA-FE; returns the runner's JSON:
    per sample ``energy`` (J: total, synapse, dendrite, soma, network), ``sim_time`` (s),
    ``spikes`` (synaptic events), ``neurons_fired`` (inputs included), ``neurons_updated``,
    ``packets_sent``, ``step_sim_time``; and ``neuron_spikes`` (population -> spikes per
    described neuron, summed over samples)."""
    py = python or oracle_python()
    with tempfile.TemporaryDirectory(prefix="snc-sanafe-") as tmp:
        src, out = Path(tmp) / "network.json", Path(tmp) / "result.json"
        src.write_text(json.dumps(description))
        try:
            proc = subprocess.run([py, str(RUNNER), str(src), str(out)], capture_output=True, text=True,
                                  timeout=timeout, cwd=tmp)
        except subprocess.TimeoutExpired:
            raise BackendError(f"SANA-FE did not finish within {timeout:.0f} s") from None
        except OSError as e:
            raise BackendError(f"cannot start the oracle interpreter {py}: {e}") from None
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise BackendError(f"SANA-FE run failed (exit {proc.returncode}, {py}): {' | '.join(tail)}")
        return json.loads(out.read_text())
