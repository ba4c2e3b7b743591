"""Shared fixtures. The corpus of real, externally produced models lives beside the repository
(../shared/corpus, or $SNC_CORPUS); conformance tests that need it are skipped where it is absent
(it is present in CI, where SNC_REQUIRE_CORPUS=1 turns a missing file into a failure)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

# The test suite proves passes by simulation (``--verify``), as the default compile does not.
os.environ.setdefault("SNC_VERIFY", "1")

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("SNC_CORPUS", ROOT.parent / "shared" / "corpus"))


def corpus_path(*parts: str) -> Path:
    path = CORPUS.joinpath(*parts)
    if not path.exists():
        if os.environ.get("SNC_REQUIRE_CORPUS") == "1":
            pytest.fail(f"corpus file {path} not present (SNC_REQUIRE_CORPUS=1)")
        pytest.skip(f"corpus file {path} not present")
    return path


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
