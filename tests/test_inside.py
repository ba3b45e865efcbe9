"""Looking inside a trained network: layers, activation grids, RGB of channels, dream, edit, filters."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import facelab
from facelab.errors import FacelabError
from facelab.probes.activations import Activations, channels_rgb, layer_outputs
from facelab.probes.change import BudgetUsed
from facelab.probes.dream import Dream, Edit
from facelab.probes.dream_set import DreamSet
from facelab.probes.edit_set import EditSet
from facelab.probes.subject import load_subject, open_probe
from facelab.report.figures import kernel_pictures
from facelab.run import InputContract
from facelab.training.config import TrainConfig
from helpers import run_cli


@pytest.mark.slow
def test_edits_over_a_set_are_scored_as_counterfactuals_are(smiling_run, tmp_path):
    """facelab edit RUN SPEC --n N: flip rate, FVA (dlib: the same person), MNAC (the run itself judges Male), closeness;
    every key scripts read, and one entry per face; a single face keeps its own summary."""
    s = facelab.edit(smiling_run, "synth:400", "Smiling", to=1, n=10, steps=30, out=tmp_path / "set")
    contract = {"n", "flip_rate", "flip_rate_ci", "fva", "fva_ci", "fva_not_found", "mnac", "mnac_oracle_accuracy", "ssim_median",
                "l1_median", "hf_share_median", "budget", "faces"}  # fmt: skip
    on_disk = json.loads((tmp_path / "set" / "summary.json").read_text())
    assert contract <= set(on_disk) and s.to_json() == on_disk and EditSet.read(tmp_path / "set") == s  # read back, typed
    assert s.n == len(s.faces) == 10 and s.flip_rate_ci[0] <= s.flip_rate <= s.flip_rate_ci[1]
    assert s.flip_rate >= 0.8  # an unbounded-enough budget turns a darknet64's Smiling on synthetic faces
    assert s.mnac is not None and 0 <= s.mnac <= 1 and s.mnac_oracle_accuracy > 0.5  # judged on Male alone
    assert all(f["other_attributes_flipped"] in (0, 1) for f in s.faces)
    found = [f for f in s.faces if f["same_person"] is not None]
    assert len(found) + len(s.fva_not_found) == 10 and all(f["descriptor_distance"] >= 0 for f in found)
    assert all(0 < f["ssim"] <= 1 and f["l1"] > 0 for f in s.faces) and s.budget.steps == 30
    assert (tmp_path / "set" / "contact_sheet.png").exists() and "flip rate" in (tmp_path / "set" / "report.html").read_text()
    with pytest.raises(FacelabError, match="give the SPEC without #ITEM"):
        facelab.edit(smiling_run, "synth:400#3", "Smiling", n=5, out=tmp_path / "bad")


def test_dreams_over_a_set_are_scored_like_edits(smiling_run, tmp_path):
    """facelab dream RUN SPEC --layer L --n N: the whole layer dreamed from N faces; the objective rises on each, and
    identity (FVA) and closeness are scored as for edits, one entry per face."""
    s = facelab.dream(smiling_run, "synth:400", "3", objective="square", n=6, steps=15, out=tmp_path / "dreams")
    on_disk = json.loads((tmp_path / "dreams" / "summary.json").read_text())
    contract = {"n", "fva", "fva_ci", "fva_not_found", "ssim_median", "l1_median", "hf_share_median", "gain_median", "budget", "faces"}
    assert contract <= set(on_disk) and s.to_json() == on_disk and DreamSet.read(tmp_path / "dreams") == s
    assert s.n == len(s.faces) == 6 and s.index == 3 and s.objective == "square"
    assert all(f["objective_final"] > f["objective_initial"] > 0 for f in s.faces) and s.gain_median > 1
    found = [f for f in s.faces if f["same_person"] is not None]
    assert len(found) + len(s.fva_not_found) == 6 and (s.fva is None or s.fva_ci[0] <= s.fva <= s.fva_ci[1])
    assert all(0 < f["ssim"] < 1 and 0 <= f["hf_share"] <= 1 for f in s.faces) and s.budget.steps == 15
    assert (tmp_path / "dreams" / "contact_sheet.png").exists() and "FVA" in (tmp_path / "dreams" / "report.html").read_text()
    with pytest.raises(FacelabError, match="give the SPEC without #ITEM"):
        facelab.dream(smiling_run, "synth:400#3", "3", n=5, out=tmp_path / "bad")


@pytest.mark.slow
def test_layers_lists_the_conv_stack(smiling_run):
    rows = facelab.layers(smiling_run)
    assert [r["index"] for r in rows] == [1, 2, 3, 4, 5]
    assert [r["shape"] for r in rows] == [[16, 64, 64], [32, 32, 32], [64, 16, 16], [128, 8, 8], [256, 4, 4]]


def test_activation_grids_match_each_layer(smiling_run, tmp_path):
    summary = facelab.activations(smiling_run, "synth:64#3", ["1", "features.4", "3"], max_channels=40, out=tmp_path)
    assert Activations.read(tmp_path) == summary
    layers = summary.to_json()["layers"]
    assert layers["features.0"] == {"index": 1, "channels": 16, "height": 64, "width": 64, "shown": 16, "figure": "activations_layer1.png"}
    assert layers["features.4"]["channels"] == 32 and layers["features.4"]["height"] == 32
    assert layers["features.8"]["shown"] == 40  # capped by --max-channels
    for f in ("activations_layer1.png", "activations_layer2.png", "activations_layer3.png", "report.html", "summary.json"):
        assert (tmp_path / f).exists(), f


def test_rgb_is_the_normalised_channels_stacked(smiling_run, tmp_path):
    run, subject = open_probe(smiling_run, "synth:64#5")
    ((_, act),) = layer_outputs(run.model, run.contract.image_input(subject.image), ["2"]).items()
    picture = channels_rgb(act, [3, 0, 7], (32, 32))  # same size as the layer: no resampling
    for k, c in enumerate([3, 0, 7]):
        m = act[c].numpy()
        np.testing.assert_allclose(picture[..., k], (m - m.min()) / (m.max() - m.min()), atol=1e-5)
    summary = facelab.rgb(smiling_run, "synth:64#5", "2", [3, 0, 7], out=tmp_path)
    img = np.asarray(Image.open(tmp_path / summary.figure))
    assert img.shape == (64, 64, 3)
    with pytest.raises(FacelabError, match="exactly three"):
        facelab.rgb(smiling_run, "synth:64#5", "2", [1, 2], out=tmp_path)


@pytest.mark.parametrize("objective", ["sum", "square", "abs"])
def test_dream_at_least_doubles_its_objective(smiling_run, tmp_path, objective):
    summary = facelab.dream(smiling_run, "synth:64#3", "3", "5", objective, steps=30, out=tmp_path)
    assert summary.objective_final >= 2 * summary.objective_initial > 0
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert isinstance(on_disk["objective_initial"], float) and isinstance(on_disk["objective_final"], float)
    assert Dream.read(tmp_path) == summary  # the summary.json keys read back as the typed result
    for f in ("dream.png", "progress.gif", "activation_before_after.png", "objective.png", "report.html"):
        assert (tmp_path / f).exists(), f
    assert Image.open(tmp_path / "progress.gif").n_frames > 5


def test_dream_every_channel_and_fourier(smiling_run, tmp_path):
    reg = facelab.Regularisers(param="fourier", decorrelate=True, blur_sigma=0.5)
    summary = facelab.dream(smiling_run, "synth:64#3", "2", "all", "abs", steps=15, reg=reg, out=tmp_path)
    assert summary.channels == list(range(32)) and (tmp_path / "dream_grid.png").exists()
    grown = [after > before for before, after in summary.per_channel.values()]
    assert sum(grown) >= 30  # nearly every channel's objective rises


def test_edit_smiling_changes_the_mouth_and_the_prediction(smiling_run, tmp_path):
    """On synthetic faces the mouth decides Smiling: an edit toward smiling must change pixels there."""
    from facelab.data.spec import open_spec

    fs = open_spec("synth:64")
    col = fs.attr_names.index("Smiling")
    not_smiling = [i for i in range(64) if fs.attributes[i, col] == 0][:3]
    for i in not_smiling:
        s = facelab.edit(smiling_run, f"synth:64#{i}", "Smiling", to=1, out=tmp_path / str(i))
        assert s.prob_after > s.prob_before and s.prob_after > 0.5
        assert s.change_inside_mask >= 2 * s.change_outside_mask, s
    summary = json.loads((tmp_path / str(not_smiling[0]) / "summary.json").read_text())
    assert set(summary) >= {"prob_before", "prob_after", "change_inside_mask", "change_outside_mask"}
    smiling = next(i for i in range(64) if fs.attributes[i, col] == 1)
    s = facelab.edit(smiling_run, f"synth:64#{smiling}", "Smiling", to=0, steps=30, out=tmp_path / "down")
    assert s.prob_after < s.prob_before


def test_edits_and_dreams_stay_in_their_budget_and_say_what_they_did(smiling_run, tmp_path):
    """The default edit moves the image at most its L2 budget (0.07 x sqrt(values)); start.png and edited.png are
    the network's inputs, lossless; the summary measures the change (SSIM, high-frequency share, where it went)."""
    s = facelab.edit(smiling_run, "synth:64#2", "Smiling", to=1, out=tmp_path / "e")
    eps = 0.07 * np.sqrt(3 * 64 * 64)
    assert s.budget.norm == "l2" and s.budget.eps == pytest.approx(eps) and 0 < s.budget.used <= eps * 1.001
    start, edited = (np.asarray(Image.open(tmp_path / "e" / f), dtype=float) / 255 for f in ("start.png", "edited.png"))
    assert start.shape == edited.shape == (64, 64, 3)
    assert np.linalg.norm(edited - start) <= eps + 0.5 * np.sqrt(start.size) / 255  # within the budget, up to 8-bit rounding
    assert 0.5 < s.ssim < 1 and 0 < s.high_frequency_share < 1
    assert s.change_inside_face > s.change_outside_face > 0  # synthetic faces: the face from their landmarks
    page = (tmp_path / "e" / "report.html").read_text()
    assert "SSIM to the start image" in page and "high-frequency share" in page
    unbounded = facelab.edit(smiling_run, "synth:64#2", "Smiling", to=1, reg=facelab.Regularisers(budget=0), out=tmp_path / "u")
    assert unbounded.budget.eps is None and unbounded.budget.used > 0
    linf = facelab.edit(smiling_run, "synth:64#2", "Smiling", reg=facelab.Regularisers(budget=0.03, budget_norm="linf"), out=tmp_path / "l")
    assert linf.budget.used <= 0.03 + 1e-6
    d = facelab.dream(smiling_run, "synth:64#3", "2", "all", "abs", steps=5, out=tmp_path / "d")
    assert (tmp_path / "d" / "start.png").exists() and len(list((tmp_path / "d" / "edited").glob("channel_*.png"))) == 32
    assert 0 < d.ssim <= 1 and set(d.per_channel_measures) == {str(c) for c in range(32)} and Dream.read(tmp_path / "d") == d
    assert Edit.read(tmp_path / "e") == s and isinstance(Edit.read(tmp_path / "e").budget, BudgetUsed)
    assert set(d.prob_before) == {"Smiling", "Male"}


def test_change_measures_tell_speckle_from_shapes():
    import torch

    from facelab.probes.change import high_frequency_share, ssim
    from facelab.training.robust import project

    gen = torch.Generator().manual_seed(0)
    image = torch.rand(3, 64, 64, generator=gen)
    assert ssim(image, image) == pytest.approx(1.0, abs=1e-6)
    speckle = torch.randn(3, 64, 64, generator=gen) * 0.05
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 64), indexing="ij")
    blob = 0.05 * torch.exp(-(xx**2 + yy**2) / 0.1).expand(3, 64, 64)  # a smooth shape, as a feature would change
    assert high_frequency_share(speckle) > 0.8 and high_frequency_share(blob) < 0.05 and high_frequency_share(blob * 0) is None
    assert ssim(image, (image + speckle).clamp(0, 1)) < ssim(image, (image + blob).clamp(0, 1))
    big = torch.randn(4, 3, 8, 8, generator=gen)
    assert project(big, 1.5, "l2").flatten(1).norm(dim=1).max() <= 1.5 + 1e-5 and project(big, 0.2, "linf").abs().max() <= 0.2
    small = big * 1e-3
    assert torch.equal(project(small, 1.5, "l2"), small)  # inside the ball: untouched


def test_edit_of_a_photo_file_has_no_mask(smiling_run, tmp_path):
    from facelab.data.spec import open_spec

    img, _ = open_spec("synth:4").load(0, (100, 80))
    Image.fromarray(img).save(tmp_path / "me.jpg")
    s = facelab.edit(smiling_run, str(tmp_path / "me.jpg"), "Smiling", to=1, steps=10, out=tmp_path / "out")
    assert s.change_inside_mask is None and s.change_outside_mask is None
    assert s.change_inside_face is None and "unknown (no landmarks)" in (tmp_path / "out" / "report.html").read_text()
    assert (tmp_path / "out" / "edit.png").exists()


def test_filters_colour_and_grey(smiling_run, tmp_path):
    summary = facelab.filters(smiling_run, out=tmp_path)
    assert summary.n_filters == 16 and summary.in_channels == 3 and (tmp_path / "filters_layer1.png").exists()
    w = torch.randn(4, 1, 5, 5)
    grey = kernel_pictures(w)
    assert grey.shape == (4, 5, 5, 3) and (grey[..., 0] == grey[..., 2]).all()
    assert grey.reshape(4, -1).min(1).tolist() == [0] * 4 and grey.reshape(4, -1).max(1).tolist() == [255] * 4


@pytest.mark.slow
def test_grey_resnet_works_end_to_end(tmp_path):
    """Every probe works on a 1-channel model of another architecture."""
    run = tmp_path / "grey"
    facelab.train(
        TrainConfig(
            spec="synth:300",
            out=str(run),
            attrs=["Smiling"],
            arch="resnet18",
            channels=1,
            size="32",
            epochs=1,
            batch=32,
            max_train_batches=2,
        ),
        quiet=True,
    )
    rows = facelab.layers(run)
    assert rows[0]["shape"][1:] == [16, 16] and len(rows) == 20
    assert facelab.activations(run, "synth:8#1", ["1", "layer4.1.conv2"], out=tmp_path / "a").layers["layer4.1.conv2"].channels == 512
    assert facelab.filters(run, out=tmp_path / "f").in_channels == 1
    s = facelab.dream(run, "synth:8#1", "layer2.0.conv1", "3", "square", steps=10, out=tmp_path / "d")
    assert s.objective_final > s.objective_initial
    e = facelab.edit(run, "synth:8#1", "Smiling", steps=5, out=tmp_path / "e")
    assert e.change_inside_mask is not None
    assert InputContract((32, 32), 1, None).pixels(load_subject("synth:8#1", "32").image).shape == (1, 1, 32, 32)


@pytest.mark.slow
def test_cli_contract_and_errors(smiling_run, tmp_path):
    run_cli(
        "dream",
        str(smiling_run),
        "synth:64#2",
        "--layer",
        "2",
        "--channel",
        "1",
        "--objective",
        "abs",
        "--steps",
        "8",
        "--lr",
        "0.02",
        "--out",
        str(tmp_path / "d"),
        "--quiet",
    )
    assert set(json.loads((tmp_path / "d" / "summary.json").read_text())) >= {"objective_initial", "objective_final"}
    run_cli(
        "edit", str(smiling_run), "synth:64#2", "--attr", "Smiling", "--to", "0", "--steps", "5", "--out", str(tmp_path / "e"), "--quiet"
    )
    assert (tmp_path / "e" / "report.html").exists()
    for args, message in [
        (("rgb", str(smiling_run), "synth:64#1", "--layer", "9", "--channels", "0,1,2"), "conv layers 1..5"),
        (("edit", str(smiling_run), "synth:64#1", "--attr", "Bald"), "the run predicts Smiling, Male"),
        (("activations", str(smiling_run), "missing.png"), "no such image file"),
        (("activations", str(smiling_run), "synth:64#99"), "out of range"),
        (("dream", str(smiling_run), "synth:64#1", "--layer", "2", "--channel", "40"), "channels 0..31"),
    ]:
        proc = run_cli(*args, check=False)
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(__import__("facelab.models.registry", fromlist=["ARCHS"]).ARCHS))
@pytest.mark.parametrize("channels", [1, 3])
def test_every_architecture_can_be_probed(arch, channels):
    """Layer table, activations, filter pictures and the attribution maps work on every registered net."""
    from facelab.models import build_model
    from facelab.probes.cam import METHODS, attribution_maps, head_layer
    from facelab.probes.layers import layer_table

    model = build_model(arch, 2, channels).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    rows = layer_table(model, (channels, 64, 64))
    assert rows[0]["index"] == 1 and all(len(r["shape"]) == 3 for r in rows)
    pixels = torch.rand(1, channels, 64, 64)
    ((_, act),) = layer_outputs(model, pixels, [str(len(rows))]).items()
    assert list(act.shape) == rows[-1]["shape"]
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert kernel_pictures(first.weight.detach()).shape[-1] == 3
    from facelab.models.registry import ARCHS

    if ARCHS[arch].cam is None:  # declared without CAM layers: CAM refuses in one line, every other method maps
        with pytest.raises(FacelabError, match="use --method gradcam"):
            head_layer(model)
        methods = [m for m in METHODS if m != "cam"]
    else:  # declared: CAM must work (a broken method fails here instead of being dropped from the grid)
        assert head_layer(model)[0] is not None
        methods = list(METHODS)
    for method in methods:
        _, _, _, maps = attribution_maps(model, (pixels - 0.5) / 0.25, method, 0, True)
        assert maps.shape == (1, 64, 64) and 0 <= float(maps.min()) and float(maps.max()) <= 1
