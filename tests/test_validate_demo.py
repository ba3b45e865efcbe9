"""The synthetic faces' validity checks with the issue's bounds, and the demo end to end."""

import json

import pytest

from helpers import run_cli


@pytest.fixture(scope="module")
def validity(tmp_path_factory):
    out = tmp_path_factory.mktemp("validate")
    proc = run_cli("data", "validate-synth", "--json", "--out", str(out))
    return json.loads(proc.stdout), out


@pytest.mark.slow
def test_validate_synth_json_keys(validity):
    s, out = validity
    assert set(s) >= {"mask_containment", "acc", "intervention", "faces_per_s"}
    assert set(s["acc"]) == {"Smiling", "Eyeglasses", "identity20"} and set(s["intervention"]) == {"mask", "elsewhere"}
    assert (out / "report.html").exists() and (out / "intervention.png").exists()


@pytest.mark.slow
def test_attribute_control(validity):
    assert validity[0]["mask_containment"] >= 0.99


@pytest.mark.slow
def test_learnable_in_about_a_minute(validity):
    s = validity[0]
    assert s["acc"]["Smiling"] >= 0.95 and s["acc"]["Eyeglasses"] >= 0.95
    assert s["acc"]["identity20"] >= 0.5  # chance 0.05


@pytest.mark.slow
def test_intervention_removes_the_signal_only_in_its_region(validity):
    iv = validity[0]["intervention"]
    assert iv["mask"] < 0.65  # about chance (0.5)
    assert iv["elsewhere"] >= 0.9


@pytest.mark.slow
def test_demo_quick_writes_index(tmp_path):
    run_cli("demo", "--quick", "--out", str(tmp_path / "demo"))
    index = (tmp_path / "demo" / "index.html").read_text()
    for link in (
        "inversion/report.html",
        "youth/report.html",
        "bias/report.html",
        "keypoints/report.html",
        "inversion/inversion/figures/inversion_ids10.png",
        "youth/edit_older/edit.png",
        "bias/evidence_unbalanced.png",
        "keypoints/photos/landmarks_photo.png",
        "webcam/annotated.webm",
        "where/cam_score/report.html",
        "where/cam_score/examples.png",
    ):
        assert link in index and (tmp_path / "demo" / link).exists(), link
    assert index.count("published (") == 4  # every study's table has the published column
    assert "CPU capability" in index and "whole demo" in index  # the time, section by section, and the machine it ran on
    assert "facelab data validate-synth" in index  # what the demo leaves out, with the command that shows it
    # Run again into the same folder: what the last demo wrote is replaced, what the user put there stays.
    (tmp_path / "demo" / "thesis.txt").write_text("mine")
    (tmp_path / "demo" / "youth" / "notes.txt").write_text("mine")
    run_cli("demo", "--quick", "--out", str(tmp_path / "demo"))
    assert (tmp_path / "demo" / "thesis.txt").read_text() == "mine" == (tmp_path / "demo" / "youth" / "notes.txt").read_text()
    assert (tmp_path / "demo" / "index.html").stat().st_mtime > (tmp_path / "demo" / "thesis.txt").stat().st_mtime
