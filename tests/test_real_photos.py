"""Real photos in, a working network out (issue 23): readers for files as public copies hold them, task-owned training
defaults, face crops found in the photos, and, where ../shared/faces is present, the real faces themselves."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facelab.data import detect as detect_mod
from facelab.data.spec import open_spec
from facelab.errors import FacelabError
from facelab.models.registry import build_model, start_outputs_at
from facelab.training.config import GENERIC_DEFAULTS, TrainConfig
from facelab.training.engine import _with_enough_steps
from facelab.training.task_registry import task_for
from helpers import run_cli

SHARED_FACES = Path(os.environ.get("FACELAB_SHARED_FACES", Path(__file__).resolve().parents[2] / "shared" / "faces"))
needs_faces = pytest.mark.skipif(
    not (SHARED_FACES / "SOURCES.md").exists(), reason=f"real photos not here: {SHARED_FACES} (the project's ../shared/faces)"
)
needs_dlib = pytest.mark.skipif(not detect_mod.dlib_installed(), reason="dlib is not installed (pip install 'facelab[faces]')")


def _rgb(path: Path, seed: int, fmt: str | None = None, size=(40, 48)) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path, format=fmt)


# ----------------------------------------------------------------------------- readers
def test_headerless_pts_and_a_linked_test_folder(tmp_path):
    """HELEN as public copies hold it: 68 lines of 'x y' with no header; 300-W's testset as a symbolic link."""
    real_test = tmp_path / "elsewhere" / "helen_test"
    real_test.mkdir(parents=True)
    root = tmp_path / "300w"
    (root / "trainset").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for folder, n in ((root / "trainset", 3), (real_test, 2)):
        for k in range(n):
            _rgb(folder / f"f{k}.jpg", k, size=(80, 70))
            pts = rng.uniform(10, 60, (68, 2))
            (folder / f"f{k}.pts").write_text("\n".join(f"{x:.3f} {y:.3f}" for x, y in pts) + "\n")
    (root / "testset").symlink_to(real_test, target_is_directory=True)
    (real_test / "loop").symlink_to(root, target_is_directory=True)  # a link back up the tree is no loop
    fs = open_spec(f"300w:{root}")
    assert len(fs) == 5 and fs.n_landmarks == 68 and int((fs.split == 2).sum()) == 2
    assert any("no version/n_points" in n for n in fs.notes)
    first = (root / "trainset" / "f0.pts").read_text().split()
    assert fs.landmarks[fs.names.index("trainset/f0.jpg")][0].tolist() == pytest.approx([float(first[0]) - 1, float(first[1]) - 1])


def test_bad_headerless_line_names_file_and_line(tmp_path):
    _rgb(tmp_path / "a.jpg", 0)
    (tmp_path / "a.pts").write_text("1 2\n3 x\n")
    with pytest.raises(FacelabError, match=r"a\.pts:2: expected 'x y'"):
        open_spec(f"300w:{tmp_path}")


def test_images_recognised_by_content(tmp_path):
    """The Yale face database ships GIFs named subject01.glasses: a folder reads them; notes and labels are not images."""
    _rgb(tmp_path / "subject01.glasses", 0, fmt="GIF")
    _rgb(tmp_path / "subject01.happy", 1, fmt="GIF")
    (tmp_path / "Readme").write_text("not an image")
    fs = open_spec(f"folder:{tmp_path}")
    assert sorted(fs.names) == ["subject01.glasses", "subject01.happy"]
    assert fs.load(0)[0].shape == (48, 40, 3)


@pytest.mark.slow
def test_bias_study_groups_by_what_the_data_holds_and_says_what_it_left_out(tmp_path):
    """UTKFace has no Pale_Skin: the study's default grouping leaves it out as a departure with its reason; a --by the
    user names that the data lacks stops in one line naming the option and the attributes there are."""
    from facelab.studies.bias import BIAS, grouping
    from facelab.studies.protocol import Plan

    for k, n in enumerate(["25_0_0_20170116.jpg.chip.jpg", "40_1_2_20170116.jpg.chip.jpg"]):
        _rgb(tmp_path / n, k)
    spec = f"utkface:{tmp_path}"
    plan = Plan.of(BIAS, spec, {})
    assert grouping(plan, "Male", given=False) == ["Male", "Young"]
    assert f"by: Male, Young instead of Male, Young, Pale_Skin ({spec} holds no Pale_Skin)" in plan.departures()
    with pytest.raises(FacelabError, match=f"--by Pale_Skin: {spec} has no such attribute; choose from Male, Young, White"):
        grouping(Plan.of(BIAS, spec, {"by": ["Male", "Pale_Skin"]}), "Male", given=True)


def test_utkface_names_become_attributes(tmp_path):
    names = ["25_0_0_20170116.jpg.chip.jpg", "40_1_2_20170116.jpg.chip.jpg", "29_1_1_2017.jpg", "70_0_4_2017.jpg"]
    for k, n in enumerate(names):
        _rgb(tmp_path / n, k)
    _rgb(tmp_path / "39_0_20170116.jpg.chip.jpg", 9)  # no race field, as two names in the full set: kept, no race
    _rgb(tmp_path / "x_1_2_2017.jpg", 10)  # no age: left out
    fs = open_spec(f"utkface:{tmp_path}")
    assert len(fs) == 5 and fs.attr_names == ["Male", "Young", "White", "Black", "Asian", "Indian", "Others"]
    by_name = dict(zip(fs.names, fs.attributes.tolist()))
    assert by_name["25_0_0_20170116.jpg.chip.jpg"][:3] == [1, 1, 1] and by_name["40_1_2_20170116.jpg.chip.jpg"][:2] == [0, 0]
    assert by_name["29_1_1_2017.jpg"][1] == 1 and by_name["70_0_4_2017.jpg"][6] == 1
    assert by_name["39_0_20170116.jpg.chip.jpg"] == [1, 0, 0, 0, 0, 0, 0]
    assert sorted(fs.ages.tolist()) == [25, 29, 39, 40, 70]
    race = dict(zip(fs.names, fs.group_values("race")))  # five one-hot columns, grouped as one attribute with five values
    assert race["25_0_0_20170116.jpg.chip.jpg"] == "White" and race["70_0_4_2017.jpg"] == "Others"
    assert race["39_0_20170116.jpg.chip.jpg"] == "unknown" and "race" in fs.group_names()
    info = json.loads(run_cli("data", "info", f"utkface:{tmp_path}", "--json").stdout)
    assert info["n_images"] == 5 and info["attribute_counts"]["Male"] == 3 and info["attribute_counts"]["Young"] == 2
    assert any("39_0_20170116" in p and "no race" in p for p in info["problems"])
    assert any("x_1_2_2017" in p and "left out" in p for p in info["problems"])


# ----------------------------------------------------------------------------- defaults owned by the task
def test_task_defaults_are_taken_and_recorded():
    kp = TrainConfig(spec="synth:10", task="keypoints")
    assert (kp.model.arch, kp.data.size, kp.optim.opt, kp.optim.lr, kp.data.channels, kp.data.crop) == (
        "darknet64",
        "128",
        "adam",
        3e-3,
        1,
        "landmarks",
    )
    assert {"arch", "opt", "lr", "epochs", "min_steps"} <= set(kp.from_task)
    sgd = TrainConfig(spec="synth:10", task="keypoints", opt="sgd", arch="resnet18")
    assert sgd.optim.lr == 0.05 and "lr" not in sgd.from_task and "arch" not in sgd.from_task  # the task's lr goes with its opt
    attr = TrainConfig(spec="synth:10")
    assert all(attr.flat()[k] == v for k, v in GENERIC_DEFAULTS.items()) and attr.from_task == []
    assert TrainConfig(spec="synth:10", task="rotation").optim.opt == "adam"
    again = TrainConfig(**{**kp.__dict__})
    assert again.from_task == kp.from_task and again.model.arch == "darknet64"
    old = {k: v for k, v in TrainConfig(spec="synth:10", task="keypoints", arch="darknet64").flat().items() if k != "from_task"}
    old |= {"crop": None, "weights": None, "min_steps": None}  # a run saved before tasks had defaults
    reopened = TrainConfig.saved(old)
    assert (reopened.data.crop, reopened.model.weights, reopened.optim.min_steps) == (None, None, None)


def test_auto_weights_train_from_scratch_offline_and_say_so(tmp_path, monkeypatch, capsys):
    from facelab import progress
    from facelab.training.engine import _with_available_weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty torch cache; FACELAB_OFFLINE=1 (conftest)
    monkeypatch.setattr(progress, "_said", set(), raising=False)
    cfg = _with_available_weights(TrainConfig(spec="synth:10", task="keypoints", arch="resnet18", weights="auto"), quiet=False)
    assert cfg.model.weights is None and "training resnet18 from scratch" in capsys.readouterr().err
    cfg = _with_available_weights(TrainConfig(spec="synth:10", task="keypoints"), quiet=False)  # darknet64: no ImageNet weights
    assert cfg.model.weights is None and "from scratch" not in capsys.readouterr().err


def test_small_sets_get_enough_steps():
    cfg = TrainConfig(spec="synth:10", task="keypoints")  # batch 32, 10 epochs, at least 1000 steps
    assert _with_enough_steps(cfg, 700, quiet=True).optim.epochs == 46  # 22 steps an epoch
    assert _with_enough_steps(cfg, 50_000, quiet=True).optim.epochs == 10
    given = TrainConfig(spec="synth:10", task="keypoints", epochs=2)
    assert _with_enough_steps(given, 700, quiet=True).optim.epochs == 2  # what the user gave is kept


@pytest.mark.parametrize("arch, head", [("darknet64", "regress"), ("resnet18", "regress"), ("darknet64", "heatmap")])
def test_an_untrained_keypoint_net_answers_the_mean_shape(arch, head):
    mean = torch.rand(10) * 0.6 + 0.2
    model = build_model(arch, 10, 1, head=head).eval()
    start_outputs_at(model, mean)
    with torch.no_grad():
        out = model(torch.randn(3, 1, 64, 64))
    assert (out - mean).abs().max() < 0.03


def test_detections_under_the_minimum_score_are_dropped(monkeypatch):
    found = [((10, 10, 40, 40), 0.9), ((60, 60, 30, 30), 0.08)]
    monkeypatch.setattr(detect_mod.DlibHogDetector, "search", lambda self, image: found)
    image = np.zeros((100, 100, 3), np.uint8)
    assert [f.score for f in detect_mod.DlibHogDetector().find(image)] == [0.9]  # the calibrated 0.1
    assert len(detect_mod.DlibHogDetector(min_score=0.0).find(image)) == 2


# ----------------------------------------------------------------------------- real photos (../shared/faces)
@needs_faces
def test_utkface_counts_equal_the_names():
    names = [p.name for p in (SHARED_FACES / "utkface").iterdir() if p.name.endswith(".jpg")]
    fs = open_spec(f"utkface:{SHARED_FACES / 'utkface'}")
    assert len(fs) == len(names)
    males = sum(n.split("_")[1] == "0" for n in names)
    assert int(fs.attributes[:, fs.attr_names.index("Male")].sum()) == males
    assert int(fs.attributes[:, fs.attr_names.index("Young")].sum()) == sum(int(n.split("_")[0]) < 30 for n in names)


@pytest.mark.slow
@needs_faces
def test_headerless_helen_files_read():
    info = json.loads(run_cli("data", "info", f"300w:{SHARED_FACES / 'helen_train'}", "--json").stdout)
    assert info["n_images"] == 870 and info["n_landmarks"] == 68 and info["problems"] == []


@needs_faces
@needs_dlib
@pytest.mark.slow
def test_aligned_lfw_identities_train_above_chance(tmp_path):
    """From scratch, ten people with 20 in-the-wild photos each, cut by --crop aligned: well above chance (0.1)."""
    people = sorted(d for d in (SHARED_FACES / "lfw").iterdir() if len(list(d.glob("*.jpg"))) >= 20)[:10]
    root = tmp_path / "people"
    for d in people:
        (root / d.name).mkdir(parents=True)
        for p in sorted(d.glob("*.jpg"))[:20]:
            shutil.copy(p, root / d.name / p.name)
    _rgb(root / people[0].name / "noise.jpg", 0, size=(250, 250))  # no face in it: left out and listed, not fatal
    out = tmp_path / "run"
    run_cli("train", f"folder:{root}", "--task", "identity", "--classes", "10", "--crop", "aligned", "--size", "64",
            "--epochs", "15", "--batch", "32", "--out", str(out), "--quiet")  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    cache = json.loads((out / "config.json").read_text())["data"]["cache"]
    assert json.loads((Path(cache) / "meta.json").read_text())["faces"]["crop"] == "aligned"
    assert summary["best"]["val_acc"] >= 0.4, summary["best"]
    assert f"{people[0].name}/noise.jpg" in summary["skipped"]


@needs_faces
@pytest.mark.slow
def test_default_keypoint_training_beats_the_mean_shape_on_helen(tmp_path):
    """The task's defaults at a test's scale (64 px, 500 steps) on HELEN's manually labelled photos (783 train, 87 held
    out). Measured with ResNet-18 (the defaults before darknet64): NME 0.102 against the mean shape's 0.185, 115 s."""
    out = tmp_path / "run"
    run_cli("train", f"300w:{SHARED_FACES / 'helen_train'}", "--task", "keypoints", "--size", "64", "--min-steps", "500",
            "--out", str(out), "--quiet")  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    config = json.loads((out / "config.json").read_text())["train"]
    assert config["arch"] == "darknet64" and "arch" in config["from_task"] and config["epochs"] >= 6
    assert summary["final"]["val_nme"] <= 0.65 * summary["baseline_mean_shape"]["val_nme"], summary["final"]


@needs_faces
@needs_dlib
@pytest.mark.slow
def test_the_face_trained_reference_shows_the_inversion_effect_on_lfw():
    """dlib's recognition network on ten LFW people (measured on 20: upright 0.99, inverted 0.08; on 100: 0.99 and 0.004)."""
    from facelab.probes.face_reference import reference_for

    spec = f"folder:{SHARED_FACES / 'lfw'}"
    sel = task_for(TrainConfig(spec=spec, task="identity", classes=10)).select(open_spec(spec), 0)
    r = reference_for(sel, n_boot=300)
    assert r.n >= 40 and r.upright >= 0.6 and r.gap_ci[0] > 0, r
    assert r.upright_ci[0] <= r.upright <= r.upright_ci[1] and r.chance == 0.1


@pytest.mark.slow
@needs_faces
@pytest.mark.skipif(
    not detect_mod.dlib_installed(), reason="the face regions of photos without landmarks come from dlib's HOG (facelab[faces])"
)
def test_photos_without_landmarks_get_face_and_background_from_the_detectors_box():
    """UTKFace crops carry no landmarks: the bias study's evidence regions come from the face detector's box, found on
    the crop scaled up (HOG misses faces of 64 px); the face sits in the middle of a centred crop."""
    from facelab.data.cache import decode_item
    from facelab.probes.attribution_scores import _face_and_background

    fs = open_spec(f"utkface:{SHARED_FACES / 'utkface'}")
    images = torch.from_numpy(np.stack([decode_item(fs, i, (64, 64), "center", 0.0)[0] for i in range(0, 200, 10)]))
    regions = _face_and_background(images, quiet=True)
    found = regions["face"].any((1, 2))
    assert found.mean() >= 0.8, found.mean()  # 192 of 200 in the study's test split
    assert regions["face"][found][:, 32, 32].all() and not (regions["face"] & regions["background"]).any()
    assert not regions["background"][~found].any()  # no face found: no region at all, its share is left out
