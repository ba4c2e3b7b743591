"""docs/architecture.md stays true to the code: every file its recipes name exists, and the
layering rules it states hold for imports at module level."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"


def _recipe_files() -> list[str]:
    text = DOC.read_text()
    recipes = text[text.index("## Recipes"):]
    return sorted(set(re.findall(r"^- `([^`]+\.(?:py|toml))`", recipes, flags=re.M)))


def test_every_file_a_recipe_names_exists():
    files = _recipe_files()
    assert len(files) >= 8
    missing = [f for f in files if "<name>" not in f and not (ROOT / f).exists()]
    assert missing == []
    assert any(p.suffix == ".toml" for p in (ROOT / "snc" / "hw" / "profiles").iterdir())


def test_adding_a_neuron_model_in_tree_touches_at_most_three_files():
    text = DOC.read_text()
    recipe = text[text.index("### Add a neuron model"):]
    end = recipe.find("\n#", 1)
    recipe = recipe if end < 0 else recipe[:end]
    files = re.findall(r"^- `([^`]+)`", recipe, flags=re.M)
    assert 1 <= len(files) <= 3, files
    assert all((ROOT / f).exists() for f in files)


def _module_imports(path: Path) -> set[str]:
    """Modules imported at module level (not inside functions)."""
    tree = ast.parse(path.read_text())
    out = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def test_the_ir_imports_nothing_above_it_and_backends_never_import_frontends():
    for path in (ROOT / "ir").glob("*.py"):
        bad = {m for m in _module_imports(path) if m.startswith("snc") and m != "snc.errors"}
        assert bad == set(), path
    for path in (ROOT / "backends").rglob("*.py"):
        bad = {m for m in _module_imports(path) if m.startswith(("snc.frontends", "snc.passes", "snc.cli", "snc.pipeline"))}
        assert bad == set(), path


def test_passes_never_import_the_simulator_or_the_estimator_at_module_level():
    for path in (ROOT / "snc" / "passes").glob("*.py"):
        bad = {m for m in _module_imports(path) if m.startswith(("snc.backends.sim", "snc.estimate", "snc.backends.lava"))}
        assert bad == set(), path
