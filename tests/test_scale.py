"""Training data at scale: images gathered once, streamed from the memory map with read-ahead, per-rank shards,
and ``facelab bench scale``'s contract (its figures are measured, never asserted as speeds)."""

import json

import numpy as np
import pytest

import facelab
from facelab.training.batches import _gathered
from facelab.training.run_folder import RunFolder
from helpers import run_cli


def test_gathering_reads_rows_in_disk_order_and_keeps_the_selections_order(tmp_path):
    images = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.uint8, shape=(50, 4, 4, 3))
    images[:] = np.arange(50, dtype=np.uint8)[:, None, None, None]
    rows = np.random.default_rng(0).permutation(50)[:30]
    got = _gathered(images, rows, chunk=7)
    assert np.array_equal(got, np.asarray(images)[rows]) and got.flags["C_CONTIGUOUS"]


@pytest.mark.slow
def test_streamed_training_repeats_the_in_memory_run(tmp_path, monkeypatch):
    """FACELAB_STREAM=1 reads every batch from the memory-mapped cache through the read-ahead thread: the same
    batches, so the same numbers as holding the images."""
    settings = dict(spec="synth:400", size="32", epochs=2, batch=64, quiet=True)
    held = facelab.train(out=str(tmp_path / "held"), **settings)
    monkeypatch.setenv("FACELAB_STREAM", "1")
    streamed = facelab.train(out=str(tmp_path / "streamed"), **settings)
    assert streamed.final["val_loss"] == pytest.approx(held.final["val_loss"], rel=1e-5)
    rows = [RunFolder(tmp_path / name).read_metrics() for name in ("held", "streamed")]
    assert [r["loss"] for r in rows[0]] == pytest.approx([r["loss"] for r in rows[1]], rel=1e-5)


@pytest.mark.slow
def test_bench_scale_reports_memory_speed_and_per_rank_shards():
    s = json.loads(run_cli("bench", "scale", "--n", "600", "--size", "32", "--steps", "4", "--json").stdout)
    assert s["n_images"] == 600 and s["size"] == 32 and s["selection_bytes"] == 600 * 32 * 32 * 3
    assert s["peak_rss_bytes"] > 0 and s["baseline_rss_bytes"] > 0 and s["in_memory_img_s"] > 0 and s["streamed_img_s"] > 0
    shards = s["ddp"]["images_bytes_per_rank"]
    assert s["ddp"]["world"] == 2 and len(shards) == 2 and all(0 < b <= 0.6 * s["selection_bytes"] for b in shards)


def test_the_flip_and_the_shift_in_one_gather_equal_the_flip_then_the_shift():
    """The loop's augmentation moves pixels in one gather: the same pixels as flipping, then shifting by whole pixels
    with the border repeated (numpy's edge padding), per image; the input is left as it was."""
    import numpy as np
    import torch

    from facelab.training.batches import mirrored_and_shifted

    b, h, w = 12, 20, 24
    x = torch.randn(b, 3, h, w).contiguous(memory_format=torch.channels_last)
    before = x.clone()
    mirrored = torch.arange(b) % 3 == 0
    moved = torch.stack([torch.arange(b) % 7 - 3, torch.arange(b) % 5 - 2], dim=1)
    out = mirrored_and_shifted(x, mirrored, moved)
    for i in range(b):
        img = x[i].flip(-1) if mirrored[i] else x[i]
        dx, dy = int(moved[i, 0]), int(moved[i, 1])
        padded = np.pad(img.numpy(), ((0, 0), (3, 3), (3, 3)), mode="edge")
        expected = padded[:, 3 - dy : 3 - dy + h, 3 - dx : 3 - dx + w]
        assert np.array_equal(out[i].numpy(), expected), i
    assert torch.equal(x, before) and out.is_contiguous(memory_format=torch.channels_last)


def test_settled_speed_leaves_out_the_warm_up_and_one_slow_window():
    """``bench train``'s figure: steps before the times settle are left out, and one slow window (a hiccup) does not
    move the median of the windows."""
    from facelab.bench import settled_img_s

    warm_up = [1.0, 0.5, 0.3, 0.2, 0.12, 0.11, 0.1, 0.1, 0.1, 0.1]
    steady = [0.1] * 15 + [0.5] * 5 + [0.1] * 10  # one slow window of five steps
    assert settled_img_s(warm_up + steady, batch=100) == pytest.approx(1000.0, rel=0.01)


@pytest.mark.slow
def test_bench_train_reports_the_loop_against_the_compute_step_interleaved_with_it():
    s = json.loads(run_cli("bench", "train", "--steps", "2", "--json").stdout)
    for net in ("darknet64@64", "resnet18@112"):
        r = s[net]
        assert r["chosen"] in ("fp32", "bf16") and r["compute_img_s"] > 0 and r["loop_img_s"] > 0
        assert r["ratio"] == pytest.approx(r["loop_img_s"] / r["compute_img_s"])
    assert s["runtime"]["cpu_capability"]


def test_augmenting_the_bytes_gives_the_numbers_of_augmenting_the_normalised_batch():
    """The loop's fused path (pixels moved as bytes, normalisation and brightness/contrast as one affine map) draws the
    same random numbers and gives the same input as ``augment(to_input(...))``, flips, shifts and jitter included."""
    import torch

    from facelab.training.batches import augment, augmented_input, seeded, to_input

    x8 = torch.randint(0, 256, (16, 24, 20, 3), dtype=torch.uint8)
    for flip, shift, jitter in ((True, 0.1, 0.15), (False, 0.06, 0.0), (False, 0.0, 0.2)):
        expected = augment(to_input(x8, 3), seeded(5), flip, shift, jitter)
        got = augmented_input(x8, seeded(5), flip, shift, jitter)
        assert got.shape == expected.shape == (16, 3, 24, 20)
        assert torch.allclose(got, expected, atol=1e-5), (flip, shift, jitter)
        assert got.is_contiguous(memory_format=torch.channels_last)
    assert not torch.equal(augmented_input(x8, seeded(5), True, 0.1, 0.15), to_input(x8, 3))
