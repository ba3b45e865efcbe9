"""Keypoints: exact points through the cache and back, landmark-safe augmentation, training, sweep, export, photos."""

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

import facelab
from facelab.data.cache import DEFAULT_MARGIN, build_cache, cache_to_source
from facelab.data.landmark_layouts import IBUG68_MIRROR, IMM58_MIRROR
from facelab.data.spec import open_spec
from facelab.data.synth_export import synthetic_photo
from facelab.errors import FacelabError
from facelab.keypoints.photos import Landmarks
from facelab.results import TrainSummary
from facelab.training.config import TrainConfig
from facelab.training.keypoint_task import augment_one, move_points
from helpers import run_cli

# The whole synthetic image (the source's own crop): the bounds below were set on it; the task's default crop of the
# points' own box makes the nose tip nearly constant, so the mean shape would be the harder baseline there.
KP = dict(task="keypoints", arch="kpnet-small", opt="adam", lr=3e-3, batch=64, channels=1, crop="full")


@pytest.mark.parametrize("source, crop", [("imm", "full"), ("300w", "landmarks")])
def test_points_survive_the_cache_and_map_back_exactly(imm_dir, ibug_dir, tmp_path, source, crop):
    """Real-format files -> reader -> cache pixels -> back to the source image's pixels: the files' points."""
    spec = f"imm:{imm_dir}" if source == "imm" else f"300w:{ibug_dir}"
    fs = open_spec(spec)
    cache = build_cache(fs, (40, 30), tmp_path / "c", crop=crop, quiet=True)
    for i in range(len(fs)):
        truth = np.load(fs.paths[i].with_suffix(".truth.npy"))
        if source == "imm":
            truth = truth * np.array([64, 48])  # .asf holds coordinates relative to the image size
        back = cache_to_source(fs, i, (40, 30), crop, DEFAULT_MARGIN[crop], cache.landmarks[i])
        np.testing.assert_allclose(back, truth, atol=0.01)


def test_flip_twice_is_the_identity():
    gen = torch.Generator().manual_seed(0)
    img = torch.rand(1, 32, 40, generator=gen)
    pts = torch.rand(68, 2, generator=gen) * torch.tensor([39.0, 31.0])
    once = augment_one(img, pts, (0.0, 0.0, 0.0, True), IBUG68_MIRROR)
    twice = augment_one(*once, (0.0, 0.0, 0.0, True), IBUG68_MIRROR)
    # 39 - (39 - x) in float32 is x to about 4e-6 px: equal within 1e-4 px (allclose's default fails near x = 0)
    assert torch.equal(twice[0], img) and torch.allclose(twice[1], pts, atol=1e-4)
    assert torch.allclose(once[1][36], torch.stack([39 - pts[45, 0], pts[45, 1]]))  # left outer eye corner <- right one
    for perm in (IBUG68_MIRROR, IMM58_MIRROR):
        assert (perm[perm] == np.arange(len(perm))).all()


def _affine_of(angle, dx, dy, size):
    """The 2x3 matrix torchvision applies to points, recovered from three points."""
    base = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    moved = move_points(base, size, angle, dx, dy).numpy()
    return np.column_stack([moved[1] - moved[0], moved[2] - moved[0], moved[0]])


def test_augmenting_then_unaugmenting_returns_the_points():
    rng = np.random.default_rng(0)
    size = (48, 40)
    for _ in range(20):
        pts = torch.from_numpy(rng.uniform([14, 12], [34, 28], (68, 2)).astype(np.float32))
        angle, fx, fy = rng.uniform(-15, 15), rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1)
        _, moved = augment_one(torch.zeros(1, 40, 48), pts, (angle, fx, fy, False), IBUG68_MIRROR)
        m = _affine_of(angle, fx * 48, fy * 40, size)
        back = np.linalg.solve(m[:, :2], (moved.numpy() - m[:, 2]).T).T
        assert np.abs(back - pts.numpy()).max() < 0.5


def test_image_and_points_move_together():
    img = torch.zeros(1, 64, 64)
    img[0, 20, 40] = 1.0  # a bright dot at (x=40, y=20)
    out, moved = augment_one(img, torch.tensor([[40.0, 20.0]]), (12.0, 0.05, -0.04, True), np.array([0]))
    y, x = divmod(int(out[0].argmax()), 64)
    assert abs(x - float(moved[0, 0])) <= 1 and abs(y - float(moved[0, 1])) <= 1


def test_points_leaving_the_image_shrink_the_transform():
    pts = torch.tensor([[1.0, 30.0], [62.0, 30.0]])  # at both edges: any shift pushes one out
    _, moved = augment_one(torch.zeros(1, 64, 64), pts, (0.0, 0.1, 0.0, False), None)
    assert (moved[:, 0] >= 0).all() and (moved[:, 0] <= 63).all()


@pytest.fixture(scope="module")
def keypoint_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("kp")
    full = facelab.train(TrainConfig(spec="synth:1500", out=str(root / "all"), size="64", epochs=8, **KP), quiet=True)
    nose = facelab.train(TrainConfig(spec="synth:1500", out=str(root / "nose"), points="nose", size="64", epochs=8, **KP), quiet=True)
    return root, full, nose


@pytest.mark.slow
def test_keypoint_summary_contract_and_bounds(keypoint_runs):
    root, full, nose = keypoint_runs
    assert full.task == "keypoints" and full.fields["points"] == "all" and full.fields["n_points"] == 68
    assert set(full.final) >= {"val_loss", "val_mse_norm", "val_px_err", "val_nme"}
    assert set(full.fields["baseline_mean_shape"]) == {"val_px_err", "val_nme"}
    # Measured on this machine: NME 0.13 after 8 epochs at 64 px (mean-shape baseline 0.23).
    assert full.final["val_nme"] < 0.18 and full.final["val_nme"] < 0.8 * full.fields["baseline_mean_shape"]["val_nme"]
    assert 0 < full.fields["ced"]["auc_0.08"] < 1 and 0 <= full.fields["ced"]["failure_rate_0.08"] <= 1
    assert nose.fields["n_points"] == 1 and nose.final["val_nme"] is None and nose.fields["baseline_mean_shape"]["val_nme"] is None
    assert nose.final["val_px_err"] < 0.6 * nose.fields["baseline_mean_shape"]["val_px_err"], nose
    for f in ("report.html", "figures/curves.png", "figures/best_worst.png", "figures/ced.png", "figures/filters.png"):
        assert (root / "all" / f).exists(), f
    assert json.loads((root / "all" / "summary.json").read_text()) == full.to_json() and TrainSummary.read(root / "all") == full


@pytest.mark.slow
def test_eval_of_a_keypoint_run_reports_errors(keypoint_runs, tmp_path):
    root, full, _ = keypoint_runs
    result = facelab.evaluate(root / "all", split="valid", out=tmp_path)
    assert "acc" not in result.fields and result.fields["px_err"] == pytest.approx(full.best["val_px_err"], rel=0.02)
    assert result.fields["nme"] == pytest.approx(full.best["val_nme"], rel=0.02)


@pytest.mark.slow
def test_export_csv_rows(keypoint_runs, tmp_path):
    root, full, _ = keypoint_runs
    path = facelab.export(root / "all", "csv", "valid", out=tmp_path / "p.csv")
    rows = list(csv.DictReader(open(path)))
    n_valid = int((open_spec("synth:1500").split == 1).sum())
    assert len(rows) == 68 * n_valid and set(rows[0]) == {"image", "point", "x", "y"}
    xy = np.array([[float(r["x"]), float(r["y"])] for r in rows])
    assert (xy > -10).all() and (xy < 74).all()


@pytest.mark.slow
def test_landmarks_on_photos(keypoint_runs, tmp_path):
    root, _, _ = keypoint_runs
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(synthetic_photo()).save(photos / "me.jpg", quality=95)
    Image.fromarray(np.zeros((50, 60, 3), np.uint8)).save(photos / "dark.png")
    s = facelab.landmarks(root / "all", f"folder:{photos}", out=tmp_path / "out")
    assert s.no_face == ["dark.png"] and s.n_faces == 1 and Landmarks.read(tmp_path / "out") == s
    pts = np.array(s.faces[0]["points"])
    assert (
        pts.shape == (68, 2) and (pts[:, 0] > 90).all() and (pts[:, 0] < 366).all() and (pts[:, 1] > 50).all() and (pts[:, 1] < 326).all()
    )
    assert (tmp_path / "out" / "landmarks_me.png").exists()


@pytest.mark.slow
def test_sweep_table_and_resume(tmp_path):
    base = TrainConfig(spec="synth:300", size="32", epochs=1, max_train_batches=2, **KP)
    result = facelab.sweep(base, [1e-2, 1e-3], [2, 3], tmp_path / "sweep")
    assert [r.setting for r in result.settings] == ["lr0.01_convs2", "lr0.01_convs3", "lr0.001_convs2", "lr0.001_convs3"]
    assert (tmp_path / "sweep" / "sweep.csv").exists() and (tmp_path / "sweep" / "figures" / "sweep.png").exists()
    again = facelab.sweep(base, [1e-2, 1e-3], [2, 3], tmp_path / "sweep")  # finished settings are not retrained
    assert again.settings == result.settings and result.best.setting in [r.setting for r in result.settings]


@pytest.mark.slow
def test_keypoint_errors(tmp_path, celeba_dir):
    with pytest.raises(FacelabError, match="use nose or all"):
        facelab.train(TrainConfig(spec="synth:100", points="eyes", out=str(tmp_path / "x"), **KP), quiet=True)
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(np.zeros((30, 30, 3), np.uint8)).save(folder / "a.png")
    proc = run_cli("train", f"folder:{folder}", "--task", "keypoints", "--out", str(tmp_path / "y"), check=False)
    assert proc.returncode == 2 and "landmarks" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    proc = run_cli("train", "synth:100", "--arch", "darknet64", "--convs", "3", "--out", str(tmp_path / "z"), check=False)
    assert proc.returncode == 2 and "--convs applies to kpnet" in proc.stderr


@pytest.mark.slow
def test_course_steps_run_on_the_real_formats(imm_dir, ibug_dir, tmp_path):
    """Nose tip on IMM at 80x60 grey; all 58 IMM points; ResNet18 (1 channel, 136 outputs) on 300-W."""
    nose = facelab.train(
        TrainConfig(spec=f"imm:{imm_dir}", out=str(tmp_path / "nose"), points="nose", size="80x60", epochs=2, **KP), quiet=True
    )
    assert nose.fields["n_points"] == 1 and nose.final["val_px_err"] > 0
    imm = facelab.train(TrainConfig(spec=f"imm:{imm_dir}", out=str(tmp_path / "imm_run"), size="80x60", epochs=1, **KP), quiet=True)
    assert imm.fields["n_points"] == 58 and imm.final["val_nme"] > 0 and "protocol" not in imm.fields  # NME, but no 300-W protocol
    kp = {**KP, "arch": "resnet18"}
    ibug = facelab.train(TrainConfig(spec=f"300w:{ibug_dir}", out=str(tmp_path / "300w_run"), size="32", epochs=1, **kp), quiet=True)
    assert ibug.fields["n_points"] == 68 and ibug.final["val_nme"] is not None
    model, _, _ = facelab.load_trained(tmp_path / "300w_run")
    assert model.trunk[0].in_channels == 1 and model.maps.out_channels == 68  # 68 points: the heatmap head by default
