"""The four studies on synthetic faces at tiny settings: their reports put the published figures beside the
measured ones, list the departures from the protocol, and the bias study finds the bias injected into the data."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import facelab
from facelab.data.regions import REGIONS, five_points, region_masks
from facelab.data.spec import open_spec
from facelab.studies.keypoints import parts_for
from facelab.studies.youth import YouthResult
from facelab.training.config import TrainConfig
from helpers import run_cli

TINY = ["--arch", "darknet64", "--size", "32", "--quiet", "--n-boot", "200"]


def _ood_folder(tmp_path):
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    fs = open_spec("synth:4")
    for i in range(4):
        Image.fromarray(fs.load(i, (64, 64))[0]).save(folder / f"face{i}.png")
    return folder


def counted_checkpoint_reads(monkeypatch) -> list[Path]:
    """Every checkpoint file a probe opens from now on (a study opens each of its runs once and probes it many times)."""
    import facelab.run

    reads, read = [], facelab.run.read_checkpoint

    def counted(path):
        reads.append(Path(path))
        return read(path)

    monkeypatch.setattr(facelab.run, "read_checkpoint", counted)
    return reads


@pytest.mark.slow
def test_bias_study_finds_the_injected_gap_and_keeps_the_json_contract(tmp_path):
    """Every man of the training faces is pale (20% of the women), not so in the test split: the unbalanced run is worse on
    men than on women, with an interval that excludes 0; the summary is the contract scripts read."""
    out = tmp_path / "bias"
    spec = "synth:2000,correlate=Male:Pale_Skin=1.0"
    # 64 px: at 32 px the brows that tell men from women are a pixel or two, and whether the network learned more than
    # the shortcut (and did better than chance on the unbiased validation faces) depended on the thread count
    # (validation accuracy 0.54 with 2 threads, 8 epochs); at 64 px 0.86 with 1 and 2 threads
    args = ["--out", str(out), "--epochs", "8", "--ood", f"folder:{_ood_folder(tmp_path)}", "--json", *TINY, "--size", "64"]
    args += ["--modes", "none,undersample,groupdro"]  # reweight shares GroupDRO's path (its loss: tests/test_train.py)
    proc = run_cli("study", "bias", spec, *args)
    s = json.loads(proc.stdout)
    assert s == json.loads((out / "summary.json").read_text())
    assert set(s["runs"]) == {"unbalanced", "balanced", "groupdro"} and all("final" in r for r in s["runs"].values())
    for g in s["groups"]:
        assert set(g) >= {"group", "n", "accuracy", "accuracy_ci"} and isinstance(g["n"], int)
        assert set(g["accuracy"]) == set(g["accuracy_ci"]) == {"unbalanced", "balanced", "groupdro"}
        assert all(len(ci) == 2 for ci in g["accuracy_ci"].values())
    assert {json.dumps(g["group"]) for g in s["groups"]} >= {'{"Male": 1}', '{"Male": 0, "Young": 1, "Pale_Skin": 0}'}
    assert s["published"]["accuracy"]["unbalanced"] == {"male": 0.973, "female": 0.966}
    gap = s["gap"]["unbalanced"]
    assert gap["difference"] < -0.1 and gap["ci"][1] < 0, gap  # men below women, the interval excludes 0
    men_not_pale = next(g for g in s["groups"] if g["group"] == {"Male": 1, "Pale_Skin": 0})
    men_pale = next(g for g in s["groups"] if g["group"] == {"Male": 1, "Pale_Skin": 1})
    assert men_not_pale["accuracy"]["unbalanced"] < men_pale["accuracy"]["unbalanced"]  # the shortcut, seen in the intersections
    assert any(d.startswith("arch: darknet64 instead of resnet18") for d in s["departures"])
    assert any(d.startswith("data: facelab's synthetic faces") for d in s["departures"])
    ood = s["ood"]["unbalanced"]
    assert ood["n"] == 4 and sum(ood["share_predicted"].values()) == pytest.approx(1.0)
    assert set(s["evidence_maps"]["unbalanced"]["groups"][0]["energy_by_region"]) == set(REGIONS)
    # the worst group first, per training mode, and the two modes the seed did not run beside its two
    assert set(s["modes"]) == {"none", "undersample", "groupdro"}
    for mode, m in s["modes"].items():
        worst = s["worst_group"][mode]
        assert set(worst) == {"group", "accuracy", "ci", "n"} and worst["ci"][0] <= worst["accuracy"] <= worst["ci"][1]
        assert m["worst_group_accuracy"] == worst["accuracy"] <= m["accuracy"] and m["worst_group"] == worst["group"]
        gap = s["best_minus_worst"][mode]
        assert gap["value"] >= 0 and gap["ci"][0] <= gap["ci"][1]
    assert json.loads((out / "groupdro" / "config.json").read_text())["train"]["groups"] == ["Male", "Young", "Pale_Skin"]
    assert any(d.startswith("modes: none, undersample, groupdro instead of none, undersample (groupdro added") for d in s["departures"])
    # evidence per group and region, with an interval across faces, and the tests between groups
    for e in s["evidence"]:
        assert set(e) >= {"run", "group", "region", "share", "ci", "n"} and e["ci"][0] <= e["share"] <= e["ci"][1]
    assert {e["region"] for e in s["evidence"]} == set(REGIONS) and all(0 < t["p"] <= 1 for t in s["evidence_tests"])
    assert "Worst group first" in (out / "report.html").read_text()
    report = (out / "report.html").read_text()
    assert (
        "published (CelebA, aligned, official split)" in report and "0.973" in report and "Departures from the published protocol" in report
    )
    for file in ("evidence_unbalanced.png", "ood_balanced/overlays.png", "unbalanced/audit/report.html", "balanced/report.html"):
        assert (out / file).exists(), file


@pytest.mark.slow
def test_inversion_study_summary_is_the_inversion_runs_plus_published(tmp_path):
    out = tmp_path / "inv"
    run_cli("study", "inversion", "synth:400,ids=10", "--classes", "10", "--epochs", "2", "--weights", "none", "--out", str(out), *TINY)
    s = json.loads((out / "summary.json").read_text())
    assert [(r["classes"], r["control"]) for r in s["runs"]] == [(10, None), (10, "inverted-trained")]
    assert {"upright_acc", "inverted_acc", "final_gap_ci", "emergence_epoch", "final_upright_ci"} <= set(s["runs"][0])
    assert s["published"]["20"] == {"upright": 0.5, "inverted": 0.3} and s["published"]["100"]["inverted"] == 0.1
    assert "weights: none (from scratch) instead of imagenet" in s["departures"]
    assert (out / "inversion" / "figures" / "inversion_ids10.png").exists()
    if s["settings"]["reference"] == "dlib":  # facelab[faces]: dlib's face-trained network beside the student
        ref = s["reference"]["classes"]["10"]
        assert set(ref) >= {"upright", "inverted", "gap_ci", "n"} and ref["n"] > 0 and s["reference"]["network"].startswith("dlib")
        assert any(c["figure"].startswith("face-trained reference (dlib), 10 identities") for c in s["comparison"])
    else:
        assert s["reference"] is None and any(d.startswith("reference: none") for d in s["departures"])
    # the optimiser comparison the study describes: Adam on the first identity count, reported beside, not as published
    assert [(r["classes"], r["opt"], r["control"]) for r in s["optimisers"]] == [(10, "adam", None)]
    assert any(
        c["figure"] == "10 identities, adam: upright minus inverted" and c["published"] == "tried, not reported" for c in s["comparison"]
    )
    # Run again into the same folder: the finished runs are kept, not trained again.
    before = (out / "inversion" / "ids10_sgd" / "summary.json").stat().st_mtime
    run_cli("study", "inversion", "synth:400,ids=10", "--classes", "10", "--epochs", "2", "--weights", "none", "--out", str(out), *TINY)
    assert (out / "inversion" / "ids10_sgd" / "summary.json").stat().st_mtime == before
    # Other settings into the same folder: trained again, never the earlier run's figures reported as these.
    run_cli("study", "inversion", "synth:400,ids=10", "--classes", "10", "--epochs", "1", "--weights", "none", "--out", str(out), *TINY)
    again = json.loads((out / "summary.json").read_text())
    assert len(again["runs"][0]["upright_acc"]) == 1 and "epochs: 1 instead of 30" in again["departures"]


@pytest.mark.slow
def test_youth_study_looks_inside_with_every_objective_and_both_age_edits(tmp_path, monkeypatch):
    out = tmp_path / "youth"
    loads = counted_checkpoint_reads(monkeypatch)
    # Smiling, which 32 px synthetic faces teach in 3 epochs (their Young does not): both networks learn
    learns = dict(size="32", epochs=3, batch=32, lr=0.05, target="Smiling", robust=0.05, robust_epochs=1)
    s = facelab.study("youth", "synth:1200", out=out, steps=5, edit_n=8, quiet=True, **learns)
    assert YouthResult.read(out).to_json() == s.to_json() == json.loads((out / "summary.json").read_text())
    acc = s.test_accuracy
    assert acc.accuracy > acc.majority + 0.2 and s.robust is not None and not s.robust.at_chance
    assert sorted(loads) == [out / "robust" / "checkpoints" / "best.ckpt", out / "run" / "checkpoints" / "best.ckpt"], loads
    assert s.published["test_accuracy"] == 0.90 and acc.accuracy_ci[0] <= acc.accuracy <= acc.accuracy_ci[1]
    assert set(s.dream) == {"sum", "square", "abs"} and set(s.edit) == {"older", "younger"}
    assert s.edit["younger"].prob_after > s.edit["younger"].prob_before
    assert s.edit["older"].prob_after < s.edit["older"].prob_before
    assert any("start image" in d for d in s.departures)
    for k in range(1, s.layers + 1):
        assert (out / "activations" / f"activations_layer{k}.png").exists()
    assert (out / "rgb" / "report.html").exists() and (out / "filters" / "filters_layer1.png").exists()
    # the write-up's own channels (numbered from 1 there): layer 1 channel 11 -> 10, ..., the RGB triples likewise
    recorded = s.recorded
    assert recorded is not None
    assert [(d.layer, d.channel) for d in recorded.dreams] == [(1, 10), (2, 23), (3, 26), (4, 43)]
    assert [(r.layer, r.channels) for r in recorded.rgb] == [(1, [9, 13, 12]), (3, [50, 53, 63])]
    assert all((out / r.figure).exists() for r in recorded.rgb)
    assert all(d.objective_final > d.objective_initial for d in recorded.dreams)
    # a robust network beside the plain one (L2 0.05, 3 PGD steps), fine-tuned from the plain network's weights: its
    # edits and a dream, side by side with the plain's
    robust = s.robust
    assert robust.budget.to_json() == {"norm": "l2", "eps": 0.05, "steps": 3} and robust.train_seconds > 0
    assert robust.start == "plain" and robust.epochs == 1
    robust_train = json.loads((out / "robust" / "config.json").read_text())["train"]
    assert robust_train["robust"] == 0.05 and robust_train["weights"] == str(out / "run" / "checkpoints" / "best.ckpt")
    assert robust.edit is not None and set(robust.edit) == {"older", "younger"} and all(0 < e.ssim <= 1 for e in robust.edit.values())
    assert (out / "edits_plain_vs_robust.png").exists() and (out / "dreams_plain_vs_robust.png").exists()
    assert any(c.figure.startswith("robust network: test accuracy") for c in s.comparison)
    # each network's edit toward older scored over a set of young test faces, beside each other
    for cf in (s.counterfactual, robust.counterfactual):
        assert cf is not None and cf.n == 8 and cf.flip_rate_ci[0] <= cf.flip_rate <= cf.flip_rate_ci[1] and cf.budget.steps == 5
        assert (out / cf.folder / "contact_sheet.png").exists()
    flips = next(c for c in s.comparison if c.figure.startswith("robust: edits of young faces toward older that flip the network (n=8)"))
    assert flips.published == "not published" and flips.literature and "DiME" in flips.literature and "ACE" in flips.literature
    # and each network's dream of the dream layer from 8 test faces, scored the same way (identity, closeness)
    for ds in (s.dream_set, robust.dream_set):
        assert ds is not None and ds.n == 8 and ds.gain_median > 1 and 0 < ds.ssim_median < 1
        assert (out / ds.folder / "contact_sheet.png").exists()
    assert any(c.figure.startswith("robust: median high-frequency share of the dream's change (n=8)") for c in s.comparison)


@pytest.mark.slow
def test_youth_study_draws_no_edits_of_a_robust_network_at_chance(tmp_path):
    """synthetic faces' Young at 32 px after one epoch: the robust network stays at the majority answer; the study says
    so in one line and shows none of its edits or dreams (they would show what a guess climbs)."""
    out = tmp_path / "youth"
    s = facelab.study("youth", "synth:600", out=out, size="32", epochs=1, robust_epochs=1, steps=5, edit_n=4, recorded=False, quiet=True)
    robust = json.loads((out / "summary.json").read_text())["robust"]
    assert robust["at_chance"] and robust["test_accuracy"]["accuracy"] <= robust["test_accuracy"]["majority"] + 0.02
    assert robust["edit"] is robust["dream"] is robust["counterfactual"] is robust["dream_set"] is None
    assert any(w.startswith("the robust run: no edits or dreams of it are shown") for w in s.warnings)
    assert not (out / "robust_edit_older").exists() and not (out / "edits_plain_vs_robust.png").exists()
    assert not any(c.figure.startswith("robust: ") for c in s.comparison)
    assert "at chance, so not shown" in (out / "report.html").read_text()


@pytest.mark.slow
def test_keypoints_study_runs_each_part_per_seed(tmp_path):
    out = tmp_path / "kp"
    result = facelab.keypoints_study("synth:200", out=out, arch="darknet64", size="32", epochs=1, seeds=2, quiet=True)
    s = json.loads((out / "summary.json").read_text())
    assert s == result.to_json() and "val_nme" not in s["parts"]["nose"]  # the nose has no eyes to normalise by
    assert list(s["parts"]) == ["nose", "58 points", "68 points"]
    assert all(len(p["seeds"]) == 2 and len(p["val_px_err"]["per_seed"]) == 2 for p in s["parts"].values())
    lo, hi = s["parts"]["68 points"]["val_nme"]["ci"]
    assert lo <= s["parts"]["68 points"]["val_nme"]["mean"] <= hi
    assert s["parts"]["58 points"]["data"] == "synth:200,points=58" and s["parts"]["58 points"]["val_nme"]["mean"] > 0
    for slug in ("nose", "58_points", "68_points"):
        assert (out / f"loss_{slug}.png").exists() and (out / slug / "filters" / "filters_layer1.png").exists()
    assert "300-W" in (out / "report.html").read_text() and "<th>literature (source)</th>" in (out / "report.html").read_text()
    nme68 = next(c for c in s["comparison"] if c["figure"].startswith("68 points: NME"))  # others' figures: their own column
    assert nme68["published"] == "not published" and "Simple Baselines" in nme68["literature"]
    assert "300w_nme_interocular" in s["literature"] and "300w_nme_interocular" not in s["published"]
    # write-up 004 by default: its learning-rate sweep on the nose network ran (one seed a setting), its conv ablation
    # could not (darknet64 has no conv count) and says so; every part has the mean shape as the baseline beside it
    assert s["variant"] == "004" and [r["lr"] for r in s["steps"]["lr_sweep"]["settings"]] == [0.001, 0.01]
    assert "conv_ablation" not in s["steps"] and any(d.startswith("conv ablation: not run") for d in s["departures"])
    assert (out / "lr_sweep" / "figures" / "sweep.png").exists()
    baselines = [c for c in s["comparison"] if "mean shape" in c["figure"]]
    assert len(baselines) == 5 and all(c["measured"] > 0 for c in baselines)  # NME and px for 58/68 points, px for the nose
    assert any(d.startswith("convs: ") and d.endswith("(only the kpnet networks take a conv count)") for d in s["departures"])


def test_keypoint_write_ups_are_two_protocols_each_as_recorded():
    from facelab.studies.keypoints import VARIANTS

    v3, v4 = VARIANTS["003"].settings, VARIANTS["004"].settings
    assert v4["lr"] == 1e-3 and v4["batch"] == {"nose": 64, "58 points": 32, "68 points": 66} and v4["epochs"]["68 points"] == 10
    assert v4["valid_share"]["68 points"] == 0.1 and v4["channels"] == 1 and v4["conv_ablation"] == "4,3"
    assert v3["lr"] == {"nose": 1e-4, "58 points": 1e-3, "68 points": 1e-4} and v3["batch"]["68 points"] == 32
    assert v3["weights"]["68 points"] == "imagenet" and v3["opt"] == "adam" and v3["lr_sweep"] == "1e-05,0.0001,0.001"
    assert VARIANTS["004"].source("epochs").startswith("the study for 68 points") and VARIANTS["003"].source("epochs").startswith("facelab")


@pytest.mark.slow
def test_keypoint_study_of_write_up_003_with_its_steps_turned_off(tmp_path):
    s = json.loads(
        run_cli(
            "study",
            "keypoints",
            "synth:120",
            "--variant",
            "003",
            "--size",
            "64",
            "--epochs",
            "1",
            "--seeds",
            "1",
            "--lr-sweep",
            "none",
            "--out",
            str(tmp_path / "kp"),
            "--json",
            "--quiet",
            env={"FACELAB_OFFLINE": "1"},
        ).stdout
    )
    assert s["variant"] == "003" and s["steps"] == {} and "lr_sweep: none instead of 1e-05,0.0001,0.001" in s["departures"]
    assert "write-up 003" in (tmp_path / "kp" / "report.html").read_text()
    # the ResNet-18's pretrained weights, unavailable offline: that part from scratch, with the reason
    assert s["settings"]["weights"] == {"nose": None, "58 points": None, "68 points": None}
    assert any(d.startswith("weights: ") and "ImageNet weights not available" in d for d in s["departures"])
    proc = run_cli("study", "keypoints", "synth:120", "--variant", "005", "--out", str(tmp_path / "x"), check=False)
    assert proc.returncode == 2 and "--variant '005': the study's write-ups are 004, 003" in proc.stderr


def test_keypoint_parts_follow_the_landmarks_of_real_data(ibug_dir):
    parts, notes = parts_for(f"300w:{ibug_dir}")
    assert [p.name for p in parts] == ["nose", "68 points"]
    assert notes == [f"58 points: not run, 300w:{ibug_dir} has 68-point landmarks (run the study on a set with 58 points)"]


def test_synthetic_faces_in_the_imm_layout():
    fs = open_spec("synth:3,points=58")
    img, _, pts = fs.load_item(0, (64, 64))
    assert fs.n_landmarks == 58 and pts.shape == (58, 2) and len(fs.mirror) == 58
    with pytest.raises(facelab.errors.FacelabError, match="68 .* or 58"):
        open_spec("synth:3,points=40")


def test_five_points_and_regions_from_any_layout():
    """The five points from 68 landmarks are CelebA's (the synthetic renderer draws both), and the regions hold
    what they name."""
    for spec in ("synth:5", "synth:5,points=58"):  # iBUG's 68 and IMM's 58
        fs = open_spec(spec)
        for i in range(5):
            _, _, pts = fs.load_item(i, (64, 64))
            assert np.abs(five_points(pts) - fs.geometry(i, 64).celeba5).max() < 0.01
    five = np.array([[69, 109], [106, 113], [77, 142], [73, 152], [108, 154]], np.float32)  # CelebA's first image
    m = region_masks(five, (178, 218))
    at = lambda name, xy: bool(m[name][int(xy[1]), int(xy[0])])  # noqa: E731
    assert at("eyes", five[0]) and at("eyes", five[1]) and not at("eyes", five[2])
    assert at("nose", five[2]) and at("mouth", (five[3] + five[4]) / 2) and not at("mouth", five[0])
    assert all(at("face", p) for p in five) and not at("background", five[2]) and at("background", (2, 2))
    assert set(m) == set(REGIONS)


def test_cam_score_on_celeba_uses_regions_from_its_five_landmarks(celeba_dir, tmp_path):
    run = tmp_path / "smile"
    facelab.train(TrainConfig(spec=f"celeba:{celeba_dir}", out=str(run), attrs=["Smiling"], size="32", epochs=1, batch=8), quiet=True)
    s = facelab.cam_score(run, split="train", methods=["cam"], n=8, steps=2, out=tmp_path / "score")
    assert s.ground_truth == "mouth region from the landmarks"
    g = s.methods["cam"]
    assert 0 <= g.pointing_game <= 1 and 0 <= g.energy_in_mask <= 1
    assert set(g.energy_by_region) == set(REGIONS)
    assert g.energy_by_region["face"] + g.energy_by_region["background"] == pytest.approx(1.0, abs=1e-4)
    assert "Where the evidence lies" in (tmp_path / "score" / "report.html").read_text()


def test_a_study_run_again_reuses_its_finished_runs(tmp_path):
    from facelab.training.engine import trained

    cfg = TrainConfig(spec="synth:200", out=str(tmp_path / "run"), attrs=["Young"], size="32", epochs=1, batch=64)
    first = trained(cfg, quiet=True)
    stamp = (tmp_path / "run" / "summary.json").stat().st_mtime
    assert trained(TrainConfig(**{**cfg.__dict__}), quiet=True) == first
    assert (tmp_path / "run" / "summary.json").stat().st_mtime == stamp
    changed = trained(TrainConfig(**{**cfg.__dict__, "epochs": 2}), quiet=True)  # another protocol: trained again
    assert changed.epochs_done == 2


def test_target_gap_from_the_audit_counts_and_undefined_without_one_side():
    from facelab.probes.audit import audit_table
    from facelab.studies.bias import target_gap

    male = np.array([1] * 50 + [0] * 40)  # men: 25 of 50 right; women: 36 of 40
    pred = np.array([1] * 25 + [0] * 25 + [1] * 36 + [0] * 4)
    audited = audit_table(np.ones(90, int), pred, {"Male": male}, n_boot=50)
    gap = target_gap(audited, "Male", 500, 0)
    assert gap.difference == pytest.approx(-0.4) and gap.ci[0] < -0.4 < gap.ci[1] < 0 and gap.excludes_zero
    assert gap.in_words().startswith("Male=1 minus Male=0 = -0.400 [") and "excludes 0" in gap.verdict()
    alone = target_gap(audit_table(np.ones(50, int), pred[:50], {"Male": male[:50]}, n_boot=50), "Male", 500, 0)
    assert alone.difference is None and "undefined" in alone.in_words()


def test_the_58_point_nme_uses_the_same_outer_eye_corners_as_the_68():
    """IMM lists both eyes in the same direction: of its two mirrored eye pairs the one farther apart is the outer
    corners, the same points iBUG's 36 and 45 mark on the same synthetic faces."""
    from facelab.data.landmark_layouts import EYE_CORNER_PAIRS

    ibug, imm = open_spec("synth:5"), open_spec("synth:5,points=58")
    for i in range(5):
        p68, p58 = ibug.load_item(i, (64, 64))[2], imm.load_item(i, (64, 64))[2]
        outer = max(np.linalg.norm(p58[a] - p58[b]) for a, b in EYE_CORNER_PAIRS[58])
        assert outer == pytest.approx(np.linalg.norm(p68[36] - p68[45]), abs=1e-3)


@pytest.mark.slow
def test_studies_run_the_same_protocol_on_real_formats(celeba_dir, ibug_dir, tmp_path):
    """CelebA's layout for the bias study (offline: the ImageNet weights are a departure with its reason; the
    evidence per group comes from regions drawn from CelebA's five landmarks), 300-W's for the keypoint study."""
    env = {"FACELAB_OFFLINE": "1", "TORCH_HOME": str(tmp_path / "torch")}
    args = ["--size", "32", "--epochs", "1", "--batch", "4", "--quiet"]
    bias = ["--n-boot", "50", "--modes", "none,groupdro"]  # the four modes are the synthetic test's; GroupDRO on CelebA's layout
    run_cli("study", "bias", f"celeba:{celeba_dir}", "--out", str(tmp_path / "bias"), *bias, *args, env=env)
    s = json.loads((tmp_path / "bias" / "summary.json").read_text())
    assert s["data"] == f"celeba:{celeba_dir}" and not any(d.startswith("data:") for d in s["departures"])
    assert any(d.startswith("weights: none (from scratch) instead of imagenet (ImageNet weights not available") for d in s["departures"])
    assert set(s["evidence_maps"]["unbalanced"]["groups"][0]["energy_by_region"]) == set(REGIONS)
    # CelebA's five landmarks give the regions: each group's share per region with its interval
    assert {e["region"] for e in s["evidence"]} == set(REGIONS) and all(e["ci"][0] <= e["share"] <= e["ci"][1] for e in s["evidence"])
    kp = json.loads(
        run_cli("study", "keypoints", f"300w:{ibug_dir}", "--seeds", "1", "--out", str(tmp_path / "kp"), "--json", *args).stdout
    )
    assert list(kp["parts"]) == ["nose", "68 points"] and any(d.startswith("58 points: not run") for d in kp["departures"])


@pytest.mark.slow
def test_bad_study_input_stops_in_one_line_before_anything_is_written(tmp_path):
    for args, message in (
        (["bias", "synth:200", "--by", "Nope"], "--by Nope: synth:200 has no such attribute"),
        (["bias", "synth:200", "--ood", "folder:/nonexistent"], "not a folder of photos"),
        (["youth", "synth:200", "--photo", "/nope.jpg"], "no such image file"),
        (["inversion", "synth:200"], "asked for 20 identities"),
        (["keypoints", "synth:200", "--arch", "nonet"], "unknown --arch 'nonet'"),
    ):
        out = tmp_path / args[0]
        proc = run_cli("study", *args, "--out", str(out), check=False)
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert not out.exists()
