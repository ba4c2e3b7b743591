"""`snc lm longctx` and `snc lm footprint`: the same numbers as the Python API, JSON and plot
written, an unknown preset one line with exit code 2 (the real console script)."""
from __future__ import annotations

import json

from click.testing import CliRunner

from snc.cli import main
from snc.lm import footprint, longctx

from .test_cli import run_snc


def test_longctx_prints_the_tables_and_writes_json_and_plot(tmp_path):
    out = CliRunner().invoke(main, ["lm", "longctx", "--preset", "hybrid-370m", "--json", str(tmp_path / "r.json"),
                                    "--plot", str(tmp_path / "p.png")])
    assert out.exit_code == 0, out.output
    assert "## hybrid-370m" in out.output and "| 1M |" in out.output and "spikingbrain-7b" not in out.output
    rows = json.loads((tmp_path / "r.json").read_text())["hybrid-370m"]
    assert rows == json.loads(json.dumps(longctx.compare(longctx.PRESETS["hybrid-370m"])))
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_footprint_json_is_the_apis():
    out = CliRunner().invoke(main, ["lm", "footprint", "--preset", "spikingbrain-7b", "--no-head", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) == [footprint.footprint(longctx.PRESETS["spikingbrain-7b"], "loihi2", 8, head=False)]


def test_an_unknown_preset_is_one_line_and_exit_code_2():
    r = run_snc(["lm", "footprint", "--preset", "gpt-5"])
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["snc: error: unknown preset 'gpt-5' (use one of spikingbrain-7b, hybrid-370m)"]
