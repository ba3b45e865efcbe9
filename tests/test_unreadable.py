"""One policy for unreadable images: skipped, counted and named the same way everywhere; --strict stops (exit 2)."""

import json

import pytest
from PIL import Image

import facelab
from facelab.data.synth_export import synthetic_photo
from facelab.training.config import TrainConfig
from helpers import run_cli


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for k in range(2):
        Image.fromarray(synthetic_photo()).save(folder / f"good{k}.jpg", quality=90)
    Image.fromarray(synthetic_photo()).save(folder / "broken.jpg", quality=90)
    truncate(folder / "broken.jpg")
    return folder


@pytest.fixture(scope="module")
def keypoint_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("kp") / "kp"
    facelab.train(
        TrainConfig(spec="synth:300", out=str(out), task="keypoints", arch="kpnet-small", opt="adam", epochs=1, batch=64), quiet=True
    )
    return out


def commands(smiling_run, keypoint_run, photos, tmp_path):
    return {
        "data show": ["data", "show", f"folder:{photos}", "--out", str(tmp_path / "sheet.png")],
        "cam": ["cam", str(smiling_run), f"folder:{photos}", "--target", "Smiling", "--out", str(tmp_path / "cam")],
        "predict": ["predict", str(smiling_run), f"folder:{photos}", "--out", str(tmp_path / "predict")],
        "landmarks": ["landmarks", str(keypoint_run), f"folder:{photos}", "--out", str(tmp_path / "landmarks")],
    }


@pytest.mark.slow
@pytest.mark.parametrize("command", ["data show", "cam", "predict", "landmarks"])
def test_a_truncated_jpeg_is_skipped_the_same_way(smiling_run, keypoint_run, photos, tmp_path, command):
    args = commands(smiling_run, keypoint_run, photos, tmp_path)[command]
    proc = run_cli(*args)
    assert "skipped 1 unreadable image(s): broken.jpg" in proc.stderr and "Traceback" not in proc.stderr
    if command != "data show":
        summary = json.loads((tmp_path / command / "summary.json").read_text())
        assert summary["unreadable"] == ["broken.jpg"]
    if command == "cam":  # a folder: SPEC of photos is mapped photo by photo (it has no labels to group a split by)
        assert [r["image"] for r in summary["images"]] == ["good0.jpg", "good1.jpg"] and summary["images"][0]["output"] == "Smiling"
    strict = run_cli(*args[:-2], "--strict", "--out", str(tmp_path / "strict"), check=False)
    assert strict.returncode == 2 and "broken.jpg" in strict.stderr and "--strict" in strict.stderr
    assert "Traceback" not in strict.stderr and strict.stderr.count("broken.jpg") == 1


@pytest.mark.slow
def test_audit_skips_an_unreadable_image_of_the_data_set(smiling_run, celeba_dir, tmp_path):
    truncate(celeba_dir / "img_align_celeba" / "000001.jpg")
    args = [
        "audit",
        str(smiling_run),
        f"celeba:{celeba_dir}",
        "--by",
        "Male",
        "--target",
        "Smiling",
        "--split",
        "train",
        "--n-boot",
        "50",
        "--min-n",
        "2",
    ]
    proc = run_cli(*args, "--out", str(tmp_path / "audit"))
    assert "skipped 1 unreadable image(s): 000001.jpg" in proc.stderr
    summary = json.loads((tmp_path / "audit" / "summary.json").read_text())
    assert summary["unreadable"] == ["000001.jpg"] and summary["overall"]["n"] == 7
    strict = run_cli(*args, "--strict", "--out", str(tmp_path / "strict"), check=False)
    assert strict.returncode == 2 and "000001.jpg" in strict.stderr and "Traceback" not in strict.stderr
