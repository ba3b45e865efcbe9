"""Readers of the real formats: CelebA, IMM, 300-W, folders; and their one-line errors."""

import json

import numpy as np
import pytest
from PIL import Image

from facelab.data.landmark_layouts import IBUG68_MIRROR, IMM58_MIRROR
from facelab.data.select import balanced, top_identities, where
from facelab.data.spec import open_spec
from facelab.errors import FacelabError
from helpers import ATTR40, run_cli


def test_celeba_official_layout(celeba_dir):
    fs = open_spec(f"celeba:{celeba_dir}")
    assert len(fs) == 12 and fs.attr_names == ATTR40
    assert set(np.unique(fs.attributes)) <= {0, 1}
    raw = (celeba_dir / "list_attr_celeba.txt").read_text().splitlines()[2].split()
    assert fs.attributes[0].tolist() == [1 if v == "1" else 0 for v in raw[1:]]
    assert fs.identities.tolist()[:3] == [100, 101, 102]  # header line 'image identity' accepted
    assert [int((fs.split == k).sum()) for k in range(3)] == [8, 2, 2]
    # landmarks are given for 178x218; these copies are 89x109, so coordinates halve
    img, full, pts = fs.load_item(0)
    assert full == (89, 109)
    assert np.allclose(pts[0], [69 * 89 / 178, 109 * 109 / 218])


@pytest.mark.slow
def test_celeba_parent_folder_and_info_json(celeba_dir):
    info = json.loads(run_cli("data", "info", f"celeba:{celeba_dir.parent}", "--json").stdout)
    assert info["n_images"] == 12 and info["image_sizes"] == [[89, 109]]
    assert info["n_identities"] == 3 and info["n_landmarks"] == 5 and info["has_boxes"] is True
    assert info["splits"] == {"train": 8, "valid": 2, "test": 2} and info["problems"] == []
    assert len(info["attributes"]) == 40


def test_missing_images_reported_and_excluded(celeba_dir):
    (celeba_dir / "img_align_celeba" / "000003.jpg").unlink()
    fs = open_spec(f"celeba:{celeba_dir}")
    assert len(fs) == 11 and "000003.jpg" not in fs.names
    assert any("1 listed images are missing" in p for p in fs.problems)


def test_without_partition_file_uses_official_boundaries(celeba_dir):
    (celeba_dir / "list_eval_partition.txt").unlink()
    fs = open_spec(f"celeba:{celeba_dir}")
    assert (fs.split == 0).all() and any("official index boundaries" in n for n in fs.notes)


def test_attributes_without_identities_work(celeba_dir):
    (celeba_dir / "identity_CelebA.txt").unlink()
    fs = open_spec(f"celeba:{celeba_dir}")
    assert fs.attributes is not None and fs.identities is None
    with pytest.raises(FacelabError, match="identity_CelebA.txt is missing"):
        fs.require("identities", "identity")


@pytest.mark.slow
def test_malformed_line_names_file_and_line(celeba_dir):
    path = celeba_dir / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    lines[5] = lines[5].rsplit(" ", 3)[0]  # three values short
    path.write_text("\n".join(lines) + "\n")
    proc = run_cli("data", "info", f"celeba:{celeba_dir}", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "list_attr_celeba.txt:6" in proc.stderr and "expected an image name and 40" in proc.stderr


@pytest.mark.slow
def test_missing_annotation_names_layout(tmp_path):
    (tmp_path / "img_align_celeba").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "img_align_celeba" / "000001.jpg")
    proc = run_cli("train", f"celeba:{tmp_path}", "--task", "attr", "--attrs", "Male", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "list_attr_celeba.txt is missing" in proc.stderr and "--task attr" in proc.stderr


def test_unknown_attribute_lists_valid_names(celeba_dir):
    with pytest.raises(FacelabError, match="unknown attribute Beard.*valid names: 5_o_Clock_Shadow"):
        open_spec(f"celeba:{celeba_dir}").attr_index(["Beard"])


def test_selections(celeba_dir):
    fs = open_spec(f"celeba:{celeba_dir}")
    top = top_identities(fs, 2, min_images=4)
    assert len(top) == 8 and sorted(set(top.identities.tolist())) == [0, 1]
    with pytest.raises(FacelabError, match="only 0 of 3 qualify.*largest has 4"):
        top_identities(fs, 1, min_images=5)
    males = where(fs, {"Male": 1})
    assert (males.attributes[:, ATTR40.index("Male")] == 1).all()
    bal = balanced(fs, "Smiling")
    col = bal.attributes[bal.split == 0, ATTR40.index("Smiling")]
    assert col.sum() * 2 == len(col)


def test_imm_asf(imm_dir):
    fs = open_spec(f"imm:{imm_dir}")
    assert len(fs) == 6 and fs.n_landmarks == 58
    k = fs.names.index("01-1m.jpg")
    truth = np.load(imm_dir / "01-1m.truth.npy")
    assert np.allclose(fs.landmarks[k], truth * [64, 48], atol=1e-3)  # relative -> pixels
    assert fs.split[fs.names.index("33-1m.jpg")] == 1 and fs.split[k] == 0  # persons 33-40 validate
    assert fs.attributes[fs.names.index("02-1f.jpg"), 0] == 0 and fs.attributes[k, 0] == 1


def test_300w_pts_are_one_based(ibug_dir):
    fs = open_spec(f"300w:{ibug_dir}")
    assert len(fs) == 5 and fs.n_landmarks == 68
    k = fs.names.index("lfpw/trainset/img1.png")
    assert np.allclose(fs.landmarks[k], np.load(ibug_dir / "lfpw/trainset/img1.truth.npy"), atol=1e-3)
    assert (fs.split[[fs.names.index(f"helen/testset/img{j}.png") for j in range(2)]] == 2).all()
    assert fs.default_crop == "landmarks"


def test_300w_dlib_xml(tmp_path):
    Image.new("RGB", (100, 90)).save(tmp_path / "a.jpg")
    parts = "".join(f"<part name='{k:02d}' x='{10 + k}' y='{20 + k // 2}'/>" for k in range(68))
    (tmp_path / "labels_ibug_300W_train.xml").write_text(
        "<?xml version='1.0'?><dataset><images><image file='a.jpg'>"
        f"<box top='5' left='6' width='70' height='72'>{parts}</box></image></images></dataset>"
    )
    fs = open_spec(f"300w:{tmp_path / 'labels_ibug_300W_train.xml'}")
    assert fs.landmarks[0, 5].tolist() == [15.0, 22.0] and fs.boxes[0].tolist() == [6, 5, 70, 72]


def test_mirror_permutations_are_involutions():
    for perm in (IBUG68_MIRROR, IMM58_MIRROR):
        assert (perm[perm] == np.arange(len(perm))).all()
    assert IBUG68_MIRROR[36] == 45 and IBUG68_MIRROR[30] == 30 and IMM58_MIRROR[52] == 52


def test_folder_converts_every_mode_and_applies_exif(tmp_path):
    person = tmp_path / "alice"
    person.mkdir()
    Image.new("L", (10, 6), 100).save(person / "grey.pgm")
    Image.new("RGBA", (10, 6), (255, 0, 0, 0)).save(person / "alpha.png")
    Image.new("P", (10, 6)).save(person / "palette.gif")
    Image.fromarray(np.full((6, 10), 65535, np.uint16)).save(person / "deep.png")
    rot = Image.new("RGB", (10, 6))
    exif = rot.getexif()
    exif[0x0112] = 6  # rotate 90: shown as 6 wide, 10 high
    rot.save(person / "rotated.jpg", exif=exif)
    fs = open_spec(f"folder:{tmp_path}")
    assert fs.classes == ["alice"] and len(fs) == 5
    for i, name in enumerate(fs.names):
        img, full = fs.load(i)
        assert img.dtype == np.uint8 and img.shape[2] == 3
        assert full == ((6, 10) if name.endswith("rotated.jpg") else (10, 6))
    white = fs.load(fs.names.index("alice/alpha.png"))[0]
    assert (white == 255).all()  # transparent pixels over white


@pytest.mark.parametrize(
    "spec,needle",
    [
        ("nope:/x", "unknown data source"),
        ("celeba:/does/not/exist", "no such file or folder"),
        ("synth:100,colour=3", "unknown option"),
    ],
)
@pytest.mark.slow
def test_bad_specs_give_one_line(spec, needle):
    proc = run_cli("data", "info", spec, check=False)
    assert proc.returncode == 2 and needle in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) <= 2
