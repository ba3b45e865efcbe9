"""The decode-once cache: contents, landmark mapping, corrupt files, resume, rebuild."""

import json

import numpy as np
import pytest

from facelab.data import cache as cache_mod
from facelab.data.cache import FaceCache, build_cache
from facelab.data.spec import open_spec
from facelab.errors import FacelabError
from helpers import run_cli


def test_cache_holds_resized_images_and_labels(celeba_dir, tmp_path):
    fs = open_spec(f"celeba:{celeba_dir}")
    c = build_cache(fs, (32, 32), tmp_path / "c", quiet=True)
    assert c.images.shape == (12, 32, 32, 3) and c.valid.all()
    assert c.labels["attributes"].shape == (12, 40) and c.attr_names[0] == "5_o_Clock_Shadow"
    # centre crop of 89x109 keeps 89x89 starting at y=10; landmarks follow
    img, full, pts = fs.load_item(0)
    expect = (pts[0] - [0, 10] + 0.5) * (32 / 89) - 0.5
    assert np.allclose(c.landmarks[0, 0], expect, atol=0.2)
    again = build_cache(fs, (32, 32), tmp_path / "c", quiet=True)  # reused, not rebuilt
    assert (again.images[3] == c.images[3]).all()


@pytest.mark.slow
def test_corrupt_image_skipped_or_strict(celeba_dir, tmp_path):
    path = celeba_dir / "img_align_celeba" / "000005.jpg"
    path.write_bytes(path.read_bytes()[:200])  # truncated JPEG
    c = build_cache(open_spec(f"celeba:{celeba_dir}"), (16, 16), tmp_path / "c", quiet=True)
    assert c.meta["n_failed"] == 1 and not c.valid[4] and c.valid.sum() == 11
    info = json.loads(run_cli("data", "info", f"celeba:{celeba_dir}", "--json").stdout)
    assert any("1 unreadable" in p for p in info["problems"])
    proc = run_cli("data", "cache", f"celeba:{celeba_dir}", "--size", "16", "--out", str(tmp_path / "s"), "--strict", check=False)
    assert proc.returncode == 2 and "unreadable" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "s" / "meta.json").exists()  # nothing that looks finished


def test_interrupted_build_resumes(monkeypatch, tmp_path):
    monkeypatch.setattr(cache_mod, "CHUNK", 8)
    fs = open_spec("synth:40")
    calls = []
    real = cache_mod._build_chunk

    def dying(chunk):
        if len(calls) == 2:
            raise KeyboardInterrupt  # the user pressed Ctrl-C during the third chunk
        calls.append(chunk)
        return real(chunk)

    monkeypatch.setattr(cache_mod, "_build_chunk", dying)
    with pytest.raises(KeyboardInterrupt):
        build_cache(fs, (32, 32), tmp_path / "c", quiet=True)
    assert not (tmp_path / "c" / "meta.json").exists()
    calls.clear()
    monkeypatch.setattr(cache_mod, "_build_chunk", lambda c: (calls.append(c), real(c))[1])
    c = build_cache(fs, (32, 32), tmp_path / "c", quiet=True)
    assert sorted(calls) == [2, 3, 4]  # only what was missing
    fresh = build_cache(fs, (32, 32), tmp_path / "fresh", quiet=True)
    assert (np.asarray(c.images) == np.asarray(fresh.images)).all()


def test_rebuilt_when_source_changes(tmp_path):
    build_cache(open_spec("synth:20"), (32, 32), tmp_path / "c", quiet=True)
    c = build_cache(open_spec("synth:24"), (32, 32), tmp_path / "c", quiet=True)
    assert len(c) == 24


@pytest.mark.slow
def test_cache_of_another_size_is_refused(tmp_path):
    build_cache(open_spec("synth:300"), (32, 32), tmp_path / "c", quiet=True)
    proc = run_cli("train", "synth:300", "--size", "64", "--cache", str(tmp_path / "c"), "--out", str(tmp_path / "r"), check=False)
    assert proc.returncode == 2 and "was built at 32x32, not 64x64" in proc.stderr


def test_parallel_build_equals_in_process(tmp_path):
    fs = open_spec("synth:300")
    a = build_cache(fs, (32, 32), tmp_path / "a", workers=2, quiet=True)
    b = build_cache(fs, (32, 32), tmp_path / "b", workers=1, quiet=True)
    assert (np.asarray(a.images) == np.asarray(b.images)).all()
    assert np.allclose(a.landmarks, b.landmarks)


def test_unfinished_cache_is_not_opened(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(FacelabError, match="not a finished facelab cache"):
        FaceCache(tmp_path / "x")


@pytest.mark.parametrize("cut", ["images.u8", "labels.npz", "meta.json"])
def test_a_damaged_cache_is_refused_when_opened_and_built_again_when_found(cut, tmp_path, capsys):
    fs = open_spec("synth:120")
    good = build_cache(fs, (32, 32), tmp_path / "c", quiet=True)
    first = np.asarray(good.images).copy()
    part = tmp_path / "c" / cut
    part.write_bytes(part.read_bytes()[: len(part.read_bytes()) // 2])
    with pytest.raises(FacelabError, match=f"damaged cache \\({cut}"):
        FaceCache(tmp_path / "c")
    again = build_cache(fs, (32, 32), tmp_path / "c", quiet=True)
    assert "the cache found here is damaged" in capsys.readouterr().err
    assert (np.asarray(again.images) == first).all()
