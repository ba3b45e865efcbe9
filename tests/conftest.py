"""Fixtures that write tiny data sets in the exact real file formats (no downloads); helpers are in helpers.py."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import ATTR40, broken_links, train_small

if os.environ.get("PYTEST_XDIST_WORKER"):
    # The test processes split the cores (facelab's own policy would give each its share too); FACELAB_THREADS
    # reaches every subprocess they start, which also keeps in-process and CLI runs bit-identical.
    from facelab.hardware import thread_count

    os.environ["FACELAB_THREADS"] = str(thread_count())
    os.environ["OMP_NUM_THREADS"] = os.environ["FACELAB_THREADS"]
    import torch

    torch.set_num_threads(int(os.environ["FACELAB_THREADS"]))


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Caches of the test session live in its temporary folder, for module fixtures too; and nothing is downloaded
    (a keypoint run's default ``--weights auto`` would fetch ImageNet weights on a machine with internet): the test of
    the download mocks it."""
    os.environ["FACELAB_CACHE"] = str(tmp_path_factory.getbasetemp() / "cache")
    os.environ["FACELAB_OFFLINE"] = "1"


@pytest.fixture(autouse=True, scope="session")
def _every_page_link_resolves(tmp_path_factory):
    """After the session: every src and href of every HTML page the suite's commands wrote points at a file that exists
    (a page that shows a broken picture is a page that lies)."""
    yield
    broken = [f"{page}: {link}" for page in tmp_path_factory.getbasetemp().rglob("*.html") for link in broken_links(page)]
    assert not broken, f"{len(broken)} broken links, e.g. {broken[:5]}"


def _rgb(w: int, h: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


@pytest.fixture
def celeba_dir(tmp_path) -> Path:
    """CelebA official layout with 12 downscaled (89x109) aligned images of 3 identities."""
    root = tmp_path / "celeba"
    img_dir = root / "img_align_celeba"
    img_dir.mkdir(parents=True)
    names = [f"{k:06d}.jpg" for k in range(1, 13)]
    for k, n in enumerate(names):
        _rgb(89, 109, k).save(img_dir / n, quality=90)
    rng = np.random.default_rng(0)
    attrs = rng.choice([-1, 1], size=(12, 40))
    lines = ["12", " ".join(ATTR40)]
    for n, row in zip(names, attrs):
        lines.append(n + "".join(("  " if v > 0 else " ") + str(v) for v in row))  # one or two spaces
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (root / "identity_CelebA.txt").write_text("image identity\n" + "".join(f"{n} {100 + k % 3}\n" for k, n in enumerate(names)))
    (root / "list_eval_partition.txt").write_text("".join(f"{n} {0 if k < 8 else (1 if k < 10 else 2)}\n" for k, n in enumerate(names)))
    header = "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y"
    (root / "list_landmarks_align_celeba.txt").write_text(
        f"12\n{header}\n" + "".join(f"{n}    69  109  106  113   77  142   73  152  108  154\n" for n in names)
    )
    (root / "list_bbox_celeba.txt").write_text("12\nimage_id x_1 y_1 width height\n" + "".join(f"{n} 10 12 60 80\n" for n in names))
    return root


@pytest.fixture
def imm_dir(tmp_path) -> Path:
    root = tmp_path / "imm"
    root.mkdir()
    rng = np.random.default_rng(1)
    for person in (1, 2, 33):
        for view in (1, 2):
            stem = f"{person:02d}-{view}{'m' if person != 2 else 'f'}"
            _rgb(64, 48, person * 10 + view).save(root / f"{stem}.jpg")
            pts = rng.uniform(0.1, 0.9, (58, 2))
            body = "".join(f"0\t0\t{x:.6f}\t{y:.6f}\t{k}\t{(k - 1) % 58}\t{(k + 1) % 58}\n" for k, (x, y) in enumerate(pts))
            (root / f"{stem}.asf").write_text(f"######\n# AAM Shape File\n######\n\n58\n\n#\n{body}\n# host image\n{stem}.jpg\n")
            np.save(root / f"{stem}.truth.npy", pts)
    return root


@pytest.fixture
def ibug_dir(tmp_path) -> Path:
    root = tmp_path / "300w"
    rng = np.random.default_rng(2)
    for sub, n in (("lfpw/trainset", 3), ("helen/testset", 2)):
        (root / sub).mkdir(parents=True)
        for k in range(n):
            _rgb(80, 70, k).save(root / sub / f"img{k}.png")
            pts = rng.uniform(10, 60, (68, 2))
            body = "\n".join(f"{x:.3f} {y:.3f}" for x, y in pts)
            (root / sub / f"img{k}.pts").write_text(f"version: 1\nn_points:  68\n{{\n{body}\n}}\n")
            np.save(root / sub / f"img{k}.truth.npy", pts - 1.0)
    return root


@pytest.fixture(scope="module")
def smiling_run(tmp_path_factory):
    """A darknet64 trained on synthetic Smiling/Male faces at 64 px, enough to probe (about 15 s)."""
    return train_small(tmp_path_factory.mktemp("runs") / "smiling", "synth:2000", ["Smiling", "Male"])
