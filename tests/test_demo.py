"""`make demo`, the README's main job, runs to the end (examples/demo.py: train or load the
digits models, compile, simulate, estimate, export)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_demo_runs_to_the_end(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "demo.py"), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "demo finished" in proc.stdout + proc.stderr
    assert any((tmp_path / "out").iterdir())
