"""The face inversion study: machinery checks and the effect on synthetic faces."""

import json

import numpy as np
import pytest
import torch

from facelab.probes.inversion import VIEWS, emergence_epoch
from facelab.probes.stats import bootstrap_ci
from facelab.training.run_folder import RunFolder
from helpers import run_cli


def test_inverted_is_the_upright_image_rotated_180_degrees():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    assert torch.equal(VIEWS["inverted"](x), torch.rot90(x, 2, dims=(2, 3)))
    assert torch.equal(VIEWS["inverted"](VIEWS["inverted"](x)), x)
    assert torch.equal(VIEWS["mirrored"](x)[..., 0], x[..., -1])


def test_emergence_rule_on_hand_made_curves():
    assert emergence_epoch([-0.1, 0.0, 0.05, -0.01, 0.02, 0.04, 0.06]) == 4  # dips back at epoch 3
    assert emergence_epoch([0.1, 0.2, 0.3]) == 0
    assert emergence_epoch([0.1, 0.2, -0.05]) is None  # not sustained to the end
    assert emergence_epoch([0.02, 0.06, 0.07], threshold=0.05) == 1


def test_bootstrap_interval_covers_the_mean():
    v = (np.random.default_rng(0).random(400) < 0.7).astype(float)
    lo, hi = bootstrap_ci(v)
    assert lo < v.mean() < hi and 0.05 < hi - lo < 0.12  # about +-1.96 * sqrt(.21/400)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("inv") / "study"
    run_cli(
        "inversion",
        "synth:1500,ids=10",
        "--classes",
        "10",
        "--epochs",
        "4",
        "--size",
        "32",
        "--out",
        str(out),
        "--n-boot",
        "300",
        "--quiet",
    )
    return json.loads((out / "summary.json").read_text()), out


@pytest.mark.slow
def test_summary_keys_and_outputs(study):
    s, out = study
    (run,) = s["runs"]
    assert {"classes", "opt", "control", "chance", "upright_acc", "inverted_acc", "final_gap", "final_gap_ci", "emergence_epoch"} <= set(
        run
    )
    assert run["classes"] == 10 and run["chance"] == 0.1 and run["control"] is None and len(run["upright_acc"]) == 4
    for f in ("report.html", "inversion.csv", "figures/inversion_ids10.png", "figures/samples.png"):
        assert (out / f).exists(), f
    # the per-epoch accuracy in the study equals the run's own validation accuracy (same images)
    valid = [r["acc"] for r in RunFolder(out / "ids10_sgd").read_metrics() if r["split"] == "valid"]
    assert np.allclose(valid, run["upright_acc"], atol=1e-6)


@pytest.mark.slow
def test_upright_beats_inverted_on_synthetic_faces(study):
    (run,) = study[0]["runs"]
    assert run["upright_acc"][-1] > 0.5  # chance 0.1
    assert run["final_gap"] > 0 and run["final_gap_ci"][0] > 0  # interval excludes zero


@pytest.mark.slow
def test_optimizer_sweep_and_control_runs(tmp_path):
    out = tmp_path / "sweep"
    run_cli(
        "inversion",
        "synth:400,ids=5",
        "--classes",
        "5",
        "--epochs",
        "1",
        "--size",
        "32",
        "--opt",
        "sgd,adam",
        "--control",
        "inverted-trained",
        "--n-boot",
        "100",
        "--out",
        str(out),
        "--quiet",
    )
    runs = json.loads((out / "summary.json").read_text())["runs"]
    assert [(r["opt"], r["control"]) for r in runs] == [
        ("sgd", None),
        ("adam", None),
        ("sgd", "inverted-trained"),
        ("adam", "inverted-trained"),
    ]
    assert (out / "figures" / "inversion_ids5.png").exists()
    proc = run_cli("inversion", "synth:400,ids=5", "--control", "upside", "--out", str(tmp_path / "x"), check=False)
    assert proc.returncode == 2 and "the only control is inverted-trained" in proc.stderr
