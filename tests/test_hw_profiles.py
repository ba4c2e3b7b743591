"""Hardware profiles as specifications (issue 13, more chips): every shipped profile loads, every
number carries a status and a source, numbers with no published figure are marked "unpublished"
and said to be placeholders wherever a profile is shown.

Expectations are read independently of snc.hw's parser: from the raw TOML documents and from
/work/shared/reference/ENERGY_AND_METRICS.md (section 1.4: Darwin3 5.47 pJ/SOP, Speck resting
power 0.42 mW, per-synop energy of Speck and SpiNNaker 2 not found)."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from snc.cli import main
from snc.errors import HardwareProfileError
from snc.hw import PROFILE_DIR, describe, load_profile, tomllib, unpublished

SHIPPED = sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))
ALLOWED_STATUSES = {"measured", "simulated", "derived", "estimated", "unpublished"}
NEW_CHIPS = ("darwin3", "spinnaker2", "speck")


def raw(name: str) -> dict:
    with open(PROFILE_DIR / f"{name}.toml", "rb") as fh:
        return tomllib.load(fh)


def marked_unpublished(doc: dict) -> list[str]:
    return [k for k, entry in doc["quantities"].items() if entry["status"] == "unpublished"]


def test_the_new_chips_ship_beside_the_old_ones():
    assert set(NEW_CHIPS) | {"loihi", "loihi2", "truenorth", "sanafe_loihi", "horowitz45"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_profile_loads_with_every_quantity_sourced(name):
    p = load_profile(name)
    doc = raw(name)
    assert p.name == name == doc["name"]
    assert list(p.quantities) == list(doc["quantities"])
    for key, entry in doc["quantities"].items():
        assert entry["status"] in ALLOWED_STATUSES, (name, key)
        assert str(entry["source"]).strip() and str(entry["unit"]).strip(), (name, key)
        assert p[key] == entry["value"]
        if entry["status"] == "unpublished":
            # the placeholder assumption is written in the source
            assert "placeholder" in entry["source"].lower(), (name, key)


@pytest.mark.parametrize("name", NEW_CHIPS)
def test_unpublished_energies_are_not_charged(name):
    """The rule docs/hardware.md states: an energy or power with no published figure is 0, so an
    estimate counts only the published terms (a lower bound), never an invented number."""
    doc = raw(name)
    for key, entry in doc["quantities"].items():
        if entry["status"] == "unpublished" and (key.startswith("energy_") or key == "static_power"):
            assert entry["value"] == 0, (name, key)


def test_darwin3_synaptic_energy_is_the_measured_average():
    p = load_profile("darwin3")
    q = p.quantity("energy_synop")
    assert q.value == 5.47e-12  # Ma et al., NSR 2024: 5.47 pJ/SOP measured average
    assert q.status == "measured" and "Ma et al" in q.source and "5.47" in q.source
    assert "energy_synop" not in unpublished(p)
    assert p["cores_per_chip"] == 24 * 24 * p["cores_per_tile"] == 576  # 6 x 6 groups of 4 x 4 tiles


def test_speck_resting_power_is_measured_and_its_synop_energy_unpublished():
    p = load_profile("speck")
    assert p["static_power"] == 0.42e-3 and p.quantity("static_power").status == "measured"
    assert p["power_total_min"] == 0.70e-3
    assert p.quantity("energy_synop").status == "unpublished"
    # sinabs' per-core neuron memories 64,64,64,32,32,16,16,16,16 Ki: the profile takes the smallest
    assert p["cores_per_chip"] == 9 and p["neurons_per_core"] == 16 * 1024
    assert p["max_fan_out"] == 2 and p["weight_bits"] == p["weight_bits_max"] == 8


def test_spinnaker2_per_event_energy_is_unpublished():
    p = load_profile("spinnaker2")
    assert p["cores_per_chip"] == 152 and p["cores_per_tile"] == 4
    assert {"energy_synop", "static_power", "time_synop"} <= set(unpublished(p))


@pytest.mark.parametrize("name", SHIPPED)
def test_unpublished_lists_exactly_the_marked_keys(name):
    assert unpublished(load_profile(name)) == marked_unpublished(raw(name))


def test_unpublished_on_a_hand_marked_profile():
    doc = raw("loihi")
    doc["quantities"]["static_power"]["status"] = "unpublished"
    doc["quantities"]["time_synop"]["status"] = "unpublished"
    from snc.hw import parse_profile

    p = parse_profile(doc, "hand.toml")
    assert unpublished(p) == ["static_power", "time_synop"]  # profile order, nothing else
    assert unpublished(load_profile("loihi")) == []


def test_hw_show_speck_prints_the_unpublished_line():
    res = CliRunner().invoke(main, ["hw", "show", "speck"])
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("unpublished:")]
    assert len(lines) == 1
    line = lines[0]
    for key in marked_unpublished(raw("speck")):
        assert key in line
    assert "static_power" not in line and "placeholder" in line
    assert f"{len(marked_unpublished(raw('speck')))} quantities" in line
    plain = CliRunner().invoke(main, ["hw", "show", "loihi"])
    assert plain.exit_code == 0 and "unpublished" not in plain.output


def _user_profile(tmp_path: Path, status: str) -> Path:
    text = (PROFILE_DIR / "loihi.toml").read_text()
    head, sep, tail = text.partition("[quantities.energy_synop]")
    tail = tail.replace('status = "simulated"', f'status = "{status}"', 1)
    tail = tail.replace('source = "Davies et al. 2018 Table 2: energy per synaptic spike op (min), 23.6 pJ"',
                        'source = "no figure for my chip; placeholder = Loihi\'s 23.6 pJ"', 1)
    path = tmp_path / "my_chip.toml"
    path.write_text(head + sep + tail)
    return path


def test_a_user_profile_may_mark_a_number_unpublished(tmp_path):
    p = load_profile(_user_profile(tmp_path, "unpublished"))
    assert unpublished(p) == ["energy_synop"]
    assert p["energy_synop"] == 23.6e-12
    assert "unpublished: 1 quantity has no published figure (energy_synop)" in describe(p)


def test_a_bad_status_is_one_clear_error_naming_the_file(tmp_path):
    path = _user_profile(tmp_path, "guessed")
    with pytest.raises(HardwareProfileError) as err:
        load_profile(path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg
    assert "energy_synop" in msg and "'guessed'" in msg and "unpublished" in msg
    res = CliRunner().invoke(main, ["hw", "show", str(path)])
    assert res.exit_code == 2 and str(path) in res.output and "'guessed'" in res.output


def _doc_rows() -> dict[str, dict[str, list[str]]]:
    """docs/hardware.md's per-profile tables: {profile: {quantity: [value, unit, status, source]}}."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "hardware.md").read_text()
    rows: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("### `"):
            current = line.split("`")[1]
            rows[current] = {}
        elif current and line.startswith("| ") and not line.startswith("| quantity"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            rows[current][cells[0]] = cells[1:]
        elif line.startswith("## ") and current:
            current = None
    return rows


def test_docs_hardware_lists_every_number_of_every_profile():
    rows = _doc_rows()
    assert sorted(rows) == SHIPPED
    for name in SHIPPED:
        doc = raw(name)["quantities"]
        assert list(rows[name]) == list(doc), name
        for key, (value, unit, status, source) in rows[name].items():
            want = doc[key]
            got = [int(v) for v in value.split(" x ")] if " x " in value else float(value)
            assert got == (want["value"] if isinstance(got, list) else pytest.approx(want["value"], rel=1e-3)), (name, key)
            assert (unit, status, source) == (want["unit"], want["status"], want["source"]), (name, key)
