"""Hardware profiles: the chips snc maps onto and estimates for, as data.

Each profile is a TOML file (``snc/hw/profiles/*.toml``, or any file a user passes) whose
``[quantities.NAME]`` tables give ``value``, ``unit``, ``status`` and ``source``: every number says
where it comes from and how much to trust it. Statuses:

* ``measured``: read off silicon (or a vendor's specification of it);
* ``simulated``: from a pre-silicon simulation (e.g. Loihi's Table 2);
* ``derived``: arithmetic on other published numbers (the arithmetic is in the source);
* ``estimated``: our reasoned estimate (the reasoning is in the source);
* ``unpublished``: no published figure was found; the value is a labelled
  placeholder assumption, stated in the source, so that the profile is complete. Results that use
  such a value are placeholders too: ``unpublished(profile)`` lists these quantities and
  ``describe`` (``snc hw show``) says so.

    p = load_profile("loihi")          # or load_profile("my_chip.toml")
    p["energy_synop"]                  # 2.36e-11
    p.quantity("energy_synop").source  # "Davies et al. 2018 Table 2: ..."
    unpublished(load_profile("speck")) # ["cores_per_tile", "mesh_tiles", ..., "energy_synop", ...]
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from snc.errors import HardwareProfileError

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
STATUSES = ("measured", "simulated", "derived", "estimated", "unpublished")
UNPUBLISHED = "unpublished"
KINDS = ("neuromorphic", "ann")

_INT = int
_NUM = (int, float)

# key -> (python type(s), must be > 0)
NEUROMORPHIC_KEYS: dict[str, tuple[Any, bool]] = {
    "cores_per_chip": (_INT, True),
    "cores_per_tile": (_INT, True),
    "mesh_tiles": (list, True),
    "neurons_per_core": (_INT, True),
    "synaptic_memory_bits": (_INT, True),
    "synapse_overhead_bits": (_INT, False),
    "weight_bits": (_INT, True),
    "weight_bits_max": (_INT, True),
    "max_fan_in": (_INT, True),
    "max_fan_out": (_INT, True),
    "energy_synop": (_NUM, False),
    "energy_neuron_active": (_NUM, False),
    "energy_neuron_inactive": (_NUM, False),
    "energy_spike_local": (_NUM, False),
    "energy_hop_ew": (_NUM, False),
    "energy_hop_ns": (_NUM, False),
    "energy_chip_hop": (_NUM, False),
    "static_power": (_NUM, False),
    "time_synop": (_NUM, False),
    "time_neuron_active": (_NUM, False),
    "time_neuron_inactive": (_NUM, False),
    "time_spike_local": (_NUM, False),
    "time_hop_ew": (_NUM, False),
    "time_hop_ns": (_NUM, False),
    "time_chip_hop": (_NUM, False),
    "barrier_min": (_NUM, False),
    "barrier_max": (_NUM, False),
    "barrier_tiles": (_INT, True),
}
ANN_KEYS: dict[str, tuple[Any, bool]] = {
    "energy_mac_fp32": (_NUM, True),
    "energy_mac_fp16": (_NUM, True),
    "energy_mac_int8": (_NUM, True),
}
OPTIONAL_KEYS = {"max_chips": (_INT, True), "graded_spike_bits": (_INT, True), "max_synapses_per_chip": (_INT, True)}


@dataclass(frozen=True)
class Quantity:
    """One number of a profile with its provenance."""

    value: Any
    unit: str
    status: str
    source: str


@dataclass
class HardwareProfile:
    name: str
    title: str
    kind: str
    description: str
    quantities: dict[str, Quantity]
    path: str | None = None
    all_inclusive: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        try:
            return self.quantities[key].value
        except KeyError:
            raise HardwareProfileError(f"profile {self.name!r} has no quantity {key!r}", file=self.path) from None

    def get(self, key: str, default: Any = None) -> Any:
        q = self.quantities.get(key)
        return default if q is None else q.value

    def __contains__(self, key: str) -> bool:
        return key in self.quantities

    def quantity(self, key: str) -> Quantity:
        self[key]
        return self.quantities[key]

    # --- derived structure ------------------------------------------------------------------
    @property
    def mesh(self) -> tuple[int, int]:
        x, y = self["mesh_tiles"]
        return int(x), int(y)

    def baselines(self) -> list[str]:
        """Names usable as ``--baseline`` (ANN profiles): fp32, fp16, int8, ..."""
        return sorted(k[len("energy_mac_"):] for k in self.quantities if k.startswith("energy_mac_"))


def available_profiles() -> list[str]:
    """Names of the profiles shipped with snc, then those of installed ``snc.hw`` plug-ins."""
    from snc.registry import hw_plugin_names

    shipped = sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))
    return shipped + [n for n in hw_plugin_names() if n not in shipped]


def _fail(msg: str, path: str) -> HardwareProfileError:
    return HardwareProfileError(msg, file=path)


def _check_value(key: str, value: Any, kind: Any, positive: bool, path: str) -> None:
    if kind is list:
        if not isinstance(value, list) or len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
            raise _fail(f"quantity {key!r} must be a list of two positive integers, got {value!r}", path)
        return
    if isinstance(value, bool) or not isinstance(value, kind):
        want = "an integer" if kind is int else "a number"
        raise _fail(f"quantity {key!r} must be {want}, got {value!r}", path)
    if value != value or value in (float("inf"), float("-inf")):
        raise _fail(f"quantity {key!r} must be finite, got {value!r}", path)
    if value < 0 or (positive and value == 0):
        raise _fail(f"quantity {key!r} must be {'> 0' if positive else '>= 0'}, got {value!r}", path)


def parse_profile(doc: dict[str, Any], path: str) -> HardwareProfile:
    """Validate a parsed profile document. Raises HardwareProfileError naming the file."""
    for key in ("name", "kind", "quantities"):
        if key not in doc:
            raise _fail(f"missing top-level key {key!r}", path)
    kind = doc["kind"]
    if kind not in KINDS:
        raise _fail(f"kind must be one of {KINDS}, got {kind!r}", path)
    raw = doc["quantities"]
    if not isinstance(raw, dict):
        raise _fail("[quantities] must be a table", path)
    quantities: dict[str, Quantity] = {}
    for key, entry in raw.items():
        if not isinstance(entry, dict):
            raise _fail(f"quantity {key!r} must be a table with value, unit, status, source", path)
        missing = [f for f in ("value", "unit", "status", "source") if f not in entry]
        if missing:
            raise _fail(f"quantity {key!r} lacks {', '.join(missing)}", path)
        if entry["status"] not in STATUSES:
            raise _fail(f"quantity {key!r}: status must be one of {STATUSES}, got {entry['status']!r}", path)
        if not str(entry["source"]).strip():
            raise _fail(f"quantity {key!r} has an empty source", path)
        quantities[key] = Quantity(entry["value"], str(entry["unit"]), entry["status"], str(entry["source"]))
    required = NEUROMORPHIC_KEYS if kind == "neuromorphic" else ANN_KEYS
    missing = [k for k in required if k not in quantities]
    if missing:
        raise _fail(f"a {kind} profile needs {', '.join(missing)}", path)
    for key, (typ, positive) in {**required, **OPTIONAL_KEYS}.items():
        if key in quantities:
            _check_value(key, quantities[key].value, typ, positive, path)
    for key, q in quantities.items():
        if key.startswith(("energy_", "time_")) and key not in required:
            _check_value(key, q.value, _NUM, False, path)
    profile = HardwareProfile(
        name=str(doc["name"]),
        title=str(doc.get("title", doc["name"])),
        kind=kind,
        description=str(doc.get("description", "")).strip(),
        quantities=quantities,
        path=path,
        all_inclusive=bool(doc.get("all_inclusive", False)),
    )
    if kind == "neuromorphic":
        x, y = profile.mesh
        if x * y * profile["cores_per_tile"] != profile["cores_per_chip"]:
            raise _fail(
                f"mesh {x} x {y} tiles x {profile['cores_per_tile']} cores per tile != {profile['cores_per_chip']} cores per chip",
                path,
            )
        if profile["weight_bits"] > profile["weight_bits_max"]:
            raise _fail("weight_bits exceeds weight_bits_max", path)
        if profile["barrier_max"] < profile["barrier_min"]:
            raise _fail("barrier_max is smaller than barrier_min", path)
    return profile


def load_profile(name_or_path: str | os.PathLike | HardwareProfile) -> HardwareProfile:
    """A shipped profile by name (``loihi``, ``loihi2``, ``truenorth``, ...), an installed
    ``snc.hw`` plug-in by name, or a TOML file."""
    if isinstance(name_or_path, HardwareProfile):
        return name_or_path
    text = str(name_or_path)
    path = Path(text)
    if path.suffix.lower() != ".toml" and os.sep not in text and "/" not in text:
        path = PROFILE_DIR / f"{text}.toml"
        if not path.exists():
            from snc.registry import hw_plugin_names, hw_profile

            if text in hw_plugin_names():
                return hw_profile(text)
            raise HardwareProfileError(f"unknown hardware profile {text!r}; available: {', '.join(available_profiles())}")
    if not path.exists():
        raise HardwareProfileError("no such profile file", file=str(path))
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise HardwareProfileError(f"not a valid TOML file ({exc})", file=str(path)) from None
    except OSError as exc:
        raise HardwareProfileError(f"cannot read ({exc.strerror or exc})", file=str(path)) from None
    return parse_profile(doc, str(path))


def unpublished(profile: HardwareProfile) -> list[str]:
    """Keys of the quantities whose status is ``unpublished`` (no published figure: the value is a
    placeholder assumption), in the profile's order."""
    return [key for key, q in profile.quantities.items() if q.status == UNPUBLISHED]


def unpublished_note(profile: HardwareProfile) -> str | None:
    """One line naming the profile's unpublished quantities, or None when it has none."""
    keys = unpublished(profile)
    if not keys:
        return None
    many = f"{len(keys)} quantities have" if len(keys) > 1 else "1 quantity has"
    return (f"unpublished: {many} no published figure ({', '.join(keys)}); "
            f"their values are placeholder assumptions (see each source), so estimates that use them are placeholders")


def describe(profile: HardwareProfile) -> str:
    """Human-readable listing for ``snc hw show``."""
    from snc.report import table

    lines = [f"{profile.name}: {profile.title}", f"kind: {profile.kind}" + ("  (all-inclusive synaptic energy)" if profile.all_inclusive else "")]
    if profile.description:
        lines.append(profile.description)
    note = unpublished_note(profile)
    if note:
        lines.append(note)
    rows = []
    for key, q in profile.quantities.items():
        rows.append([key, _fmt(q.value), q.unit, q.status, q.source])
    lines.append("")
    lines.append(table(rows, ["quantity", "value", "unit", "status", "source"], align="lrlll"))
    return "\n".join(lines)


def markdown_table(profile: HardwareProfile) -> str:
    """The profile as a Markdown table (quantity, value, unit, status, source), as in
    docs/hardware.md, headed by the profile's name and title and the count of unpublished ones."""
    lines = [f"### `{profile.name}`: {profile.title}", ""]
    keys = unpublished(profile)
    if keys:
        lines += [f"Unpublished (placeholders): {len(keys)} of {len(profile.quantities)} quantities.", ""]
    lines += ["| quantity | value | unit | status | source |", "|---|---|---|---|---|"]
    for key, q in profile.quantities.items():
        lines.append(f"| {key} | {_fmt(q.value)} | {q.unit} | {q.status} | {q.source} |")
    return "\n".join(lines) + "\n"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return " x ".join(str(v) for v in value)
    return str(value)
