"""The installed package must contain every source package in the tree.

A clean clone once failed because a sub-package existed on disk but was not
listed in pyproject's ``packages``; an editable install here hid it.
"""
from __future__ import annotations

import pathlib
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Lava venv only
    import tomli as tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _declared():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return cfg["package-dir"], set(cfg["packages"])


def _package_dir(name, mapping):
    """Directory setuptools will use for dotted package ``name``."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        prefix = ".".join(parts[:i])
        if prefix in mapping:
            return ROOT / mapping[prefix] / pathlib.Path(*parts[i:])
    return ROOT / pathlib.Path(*parts)


def test_every_declared_package_exists_with_an_init():
    mapping, packages = _declared()
    for name in packages:
        d = _package_dir(name, mapping)
        assert (d / "__init__.py").is_file(), f"{name} -> {d} has no __init__.py"


def test_every_source_package_on_disk_is_declared():
    mapping, packages = _declared()
    roots = {"snc": ROOT / "snc", "snc.ir": ROOT / "ir", "snc.backends": ROOT / "backends"}
    on_disk = set()
    for top, base in roots.items():
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            if any(p.startswith(".") or p == "__pycache__" for p in rel.parts):
                continue
            if "template" in rel.parts:  # package data, not a package
                continue
            on_disk.add(".".join((top, *rel.parts)) if rel.parts else top)
    missing = sorted(on_disk - packages)
    assert not missing, f"packages on disk but not in pyproject: {missing}"
    # and a directory listed for a package maps to the right place
    for name in on_disk:
        assert _package_dir(name, mapping).is_dir()
