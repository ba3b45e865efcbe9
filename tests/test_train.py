"""The training engine: run folder, determinism, resume after kill -9, DDP, errors."""

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import facelab
from facelab.errors import FacelabError
from facelab.results import Evaluation, TrainSummary
from facelab.run import load_trained
from facelab.training.config import TrainConfig
from facelab.training.run_folder import RunFolder
from helpers import run_cli

SMALL = dict(spec="synth:1200", attrs=["Eyeglasses", "Smiling"], size="32", epochs=3, batch=64)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "small"
    summary = facelab.train(TrainConfig(out=str(out), **SMALL), quiet=True)
    return out, summary


@pytest.mark.slow
def test_run_folder_is_self_describing(small_run):
    out, summary = small_run
    for name in (
        "config.json",
        "metrics.csv",
        "summary.json",
        "report.html",
        "checkpoints/last.ckpt",
        "checkpoints/best.ckpt",
        "figures/curves.png",
        "figures/samples.png",
    ):
        assert (out / name).exists(), name
    disk = json.loads((out / "summary.json").read_text())
    assert (
        disk == summary.to_json()
        and TrainSummary.read(out) == summary
        and disk["task"] == "attr"
        and disk["arch"] == "darknet64"
        and disk["epochs_done"] == 3
    )
    assert set(disk["final"]) == {"val_loss", "val_acc", "val_acc_per_attr", "val_balanced_acc_per_attr", "val_auc_per_attr"}
    assert set(disk["final"]["val_acc_per_attr"]) == set(disk["final"]["val_auc_per_attr"]) == {"Eyeglasses", "Smiling"}
    assert all(0.5 < v <= 1 for v in disk["final"]["val_balanced_acc_per_attr"].values())  # better than a constant answer
    rows = RunFolder(out).read_metrics()
    assert [(r["epoch"], r["split"]) for r in rows] == [(e, s) for e in range(3) for s in ("train", "valid")]
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["spec"] == "synth:1200" and "torch" in config["versions"]
    assert "Eyeglasses" in (out / "report.html").read_text()


def test_report_lists_only_the_settings_that_apply(small_run):
    page = (small_run[0] / "report.html").read_text()
    assert "<td>attrs</td>" in page and "<td>momentum</td>" in page and "<h2>Machine</h2>" in page
    for other in ("points", "convs", "classes", "min_images", "max_train_batches"):
        assert f"<td>{other}</td>" not in page, other
    assert ">None<" not in page


def test_learns_eyeglasses(small_run):
    assert small_run[1].final["val_acc_per_attr"]["Eyeglasses"] > 0.9


def test_same_seed_same_metrics(small_run, tmp_path):
    again = facelab.train(TrainConfig(out=str(tmp_path / "again"), **SMALL), quiet=True)
    assert again.final == small_run[1].final


def test_checkpoint_loads_weights_only(small_run):
    model, cfg, _ = load_trained(small_run[0])
    assert cfg.data.attrs == ["Eyeglasses", "Smiling"] and model(torch.zeros(1, 3, 32, 32)).shape == (1, 2)


KILLER = """
import os, signal, sys
import lightning.pytorch as pl
import facelab
from facelab.training.config import TrainConfig

class KillMidEpoch(pl.Callback):
    def on_train_batch_start(self, trainer, module, batch, idx):
        if trainer.current_epoch == 1 and idx == 5:
            os.kill(os.getpid(), signal.SIGKILL)

facelab.train(TrainConfig(out=sys.argv[1], **{small}), quiet=True, callbacks=[KillMidEpoch()])
"""


@pytest.mark.slow
def test_resume_after_kill_equals_uninterrupted(small_run, tmp_path):
    out = tmp_path / "killed"
    script = textwrap.dedent(KILLER).replace("{small}", repr(SMALL))
    proc = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == -9  # really killed mid-epoch 1
    assert (out / "checkpoints" / "last.ckpt").exists() and not (out / "summary.json").exists()
    run_cli("train", "--resume", str(out), "--quiet")
    resumed = json.loads((out / "summary.json").read_text())
    assert resumed["final"] == small_run[1].final and resumed["epochs_done"] == 3
    rows = RunFolder(out).read_metrics()
    assert [(r["epoch"], r["split"]) for r in rows] == [(e, s) for e in range(3) for s in ("train", "valid")]


def test_identity_task(tmp_path):
    s = facelab.train(
        TrainConfig(spec="synth:800,ids=10", task="identity", classes=10, size="32", epochs=3, batch=64, out=str(tmp_path / "id")),
        quiet=True,
    )
    assert s.task == "identity" and "val_acc_per_attr" not in s.final
    assert s.final["val_acc"] > 0.3 and s.chance["acc"] < 0.2  # chance is about 0.1


@pytest.mark.slow
def test_ddp_two_processes_on_cpu(tmp_path):
    out = tmp_path / "ddp"
    run_cli(
        "train",
        "synth:512",
        "--size",
        "32",
        "--epochs",
        "1",
        "--batch",
        "32",
        "--devices",
        "2",
        "--out",
        str(out),
        "--quiet",
        env={"OMP_NUM_THREADS": "1"},
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs_done"] == 1
    rows = RunFolder(out).read_metrics()
    # 409 training images, batch 32 per process, 2 processes: 6 batches each, 384 images seen
    assert next(r for r in rows if r["split"] == "train")["n"] == 384
    assert next(r for r in rows if r["split"] == "valid")["n"] == 51
    batching = json.loads((out / "config.json").read_text())["batching"]  # the effective batch and the lr rule, in words
    assert batching["world"] == 2 and batching["effective_batch"] == 64 and "not scaled" in batching["lr_rule"]
    assert "effective batch" in (out / "report.html").read_text()
    # each process holds its own shard of the training images and the validation images, not the whole selection
    ranks = [json.loads((out / "ranks" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert sum(r["train_items"] for r in ranks) == 409 and {r["train_items"] for r in ranks} == {204, 205}
    assert all(r["images_bytes"] == (r["train_items"] + 51) * 32 * 32 * 3 for r in ranks)
    assert all(r["images_bytes"] <= 0.6 * 512 * 32 * 32 * 3 for r in ranks)


def test_a_training_shard_is_a_seeded_partition_of_the_training_split():
    from facelab.training.data_prep import training_shard

    split = np.array([0] * 10 + [1] * 3 + [2] * 2)
    shards = [training_shard(split, 7, r, 3) for r in range(3)]
    assert sorted(np.concatenate([m for m, _ in shards]).tolist()) == list(range(10))
    assert all(set(held) == set(mine) | {10, 11, 12} for mine, held in shards)  # the validation split everywhere
    assert np.array_equal(training_shard(split, 7, 1, 3)[0], shards[1][0])


@pytest.mark.slow
def test_nan_loss_stops_with_epoch_and_step(tmp_path):
    proc = run_cli(
        "train",
        "synth:300",
        "--size",
        "32",
        "--lr",
        "1e30",
        "--schedule",
        "none",
        "--epochs",
        "2",
        "--out",
        str(tmp_path / "nan"),
        "--quiet",
        check=False,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert re.search(r"loss became (nan|inf) at epoch \d+, step \d+; the last good checkpoint is kept", proc.stderr)


def test_eval_on_test_split(small_run, tmp_path):
    result = facelab.evaluate(small_run[0], split="test", out=tmp_path / "ev")
    assert result.n == 120 and 0 <= result.fields["acc"] <= 1 and (tmp_path / "ev" / "report.html").exists()
    assert Evaluation.read(tmp_path / "ev") == result
    fp32 = facelab.evaluate(small_run[0], split="test", out=tmp_path / "ev32", precision="fp32", device="cpu")
    assert fp32.runtime["precision"] == "fp32" and fp32.runtime["device"] == "cpu"
    if not torch.cuda.is_available():  # the device asked for is the one used, not the run's recorded one
        with pytest.raises(FacelabError, match="no CUDA GPU"):
            facelab.evaluate(small_run[0], split="test", out=tmp_path / "evgpu", device="cuda")


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--arch", "vgg99"], "unknown --arch 'vgg99'; use one of darknet64"),
        (["--task", "attr", "--attrs", "Beard"], "unknown attribute Beard"),
        (["--arch", "resnet18", "--weights", "imagenet"], "FACELAB_OFFLINE=1 (no download attempted); fetch https://"),
        (["--weights", "/no/such.pth"], "no such file"),
        (["--task", "identity", "--classes", "50"], "only 0 of"),
    ],
)
@pytest.mark.slow
def test_bad_training_input_is_one_line(tmp_path, args, needle):
    env = {"FACELAB_OFFLINE": "1", "TORCH_HOME": str(tmp_path / "torch")}  # an empty torch cache, and no network
    proc = run_cli("train", "synth:200", "--out", str(tmp_path / "bad"), "--quiet", *args, check=False, env=env)
    assert proc.returncode == 2 and needle in proc.stderr and "Traceback" not in proc.stderr


def test_existing_run_is_not_overwritten(small_run):
    with pytest.raises(FacelabError, match="already holds a run"):
        facelab.train(TrainConfig(out=str(small_run[0]), **SMALL), quiet=True)


def test_weights_file_roundtrip(small_run, tmp_path):
    model, _, _ = load_trained(small_run[0])
    torch.save(model.state_dict(), tmp_path / "w.pth")
    built = facelab.build_model("darknet64", 2, weights=str(tmp_path / "w.pth"))
    assert torch.equal(built.classifier.weight, model.classifier.weight)


@pytest.mark.slow
def test_models_table():
    out = run_cli("models").stdout
    assert "darknet64" in out and "393,618" in out and "resnet18" in out


def test_every_epoch_draws_a_new_batch_order(tmp_path):
    """Lightning sets the epoch on ``batch_sampler.sampler``; before EpochBatches answered there, every epoch
    repeated epoch 0's order."""
    import lightning.pytorch as pl

    firsts = []

    class FirstBatch(pl.Callback):
        def on_train_batch_start(self, trainer, module, batch, idx):
            if idx == 0:
                firsts.append(batch[2][:8].tolist())

    facelab.train(TrainConfig(out=str(tmp_path / "r"), **SMALL | {"epochs": 3}), quiet=True, callbacks=[FirstBatch()])
    assert len(firsts) == 3 and firsts[0] != firsts[1] != firsts[2] != firsts[0]


def test_imagenet_weights_download_into_the_torch_cache(tmp_path, monkeypatch):
    """--weights imagenet fetches torchvision's file when it is missing (the download mocked), then loads it."""
    import urllib.error

    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("FACELAB_OFFLINE", raising=False)  # the suite runs offline; here the download is mocked
    fetched = []

    def fake_download(url, dst, progress=True):
        fetched.append(url)
        torch.save(torchvision.models.squeezenet1_1().state_dict(), dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    model = facelab.build_model("squeezenet1_1", 3, weights="imagenet")
    assert len(fetched) == 1 and fetched[0].endswith(".pth") and (tmp_path / "torch" / "hub" / "checkpoints").iterdir()
    facelab.build_model("squeezenet1_1", 3, weights="imagenet")  # now cached: no second download
    assert len(fetched) == 1 and model.features[0].weight.shape[1] == 3

    def offline(url, dst, progress=True):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(FacelabError, match=r"could not download https://\S+ \(Temporary failure.*copy it to .*resnet18"):
        facelab.build_model("resnet18", 2, weights="imagenet")


def test_a_model_at_chance_level_is_flagged_on_its_page_and_the_terminal(tmp_path):
    """A network that learned nothing (lr 1e-6, one epoch, trained adversarially): summary.json says what chance scores
    and how the run was trained; the report and the terminal warn, and say why a robust run stays there."""
    args = ("--attrs", "Smiling", "--size", "32", "--epochs", "1", "--batch", "64", "--lr", "1e-6", "--robust", "0.5", "--quiet")
    proc = run_cli("train", "synth:300", "--out", str(tmp_path / "r"), *args)
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert set(s["chance"]) == {"Smiling"} and 0.5 <= s["chance"]["Smiling"] <= 1
    assert s["robust"] == {"eps": 0.5, "norm": "l2", "steps": 1}
    flagged = s["final"]["val_acc"] <= s["chance"]["Smiling"] + 0.02
    page = (tmp_path / "r" / "report.html").read_text()
    for shown in (page, proc.stderr):
        assert ("Smiling" in shown and "at chance level" in shown) == flagged
        assert ("adversarial training learns more slowly" in shown and "train longer (--epochs)" in shown) == flagged


def ran(final: dict, chance: dict, robust: dict | None = None) -> TrainSummary:
    """A run's summary with only what the chance warnings read."""
    return TrainSummary("attr", "darknet64", 1, 1.0, 0, final, final, {}, robust, None, {"chance": chance})


def test_chance_warnings_name_each_output_at_chance():
    from facelab.report.run_report import at_chance

    lines = at_chance(ran({"val_acc_per_attr": {"Smiling": 0.55, "Male": 0.95}}, {"Smiling": 0.54, "Male": 0.51}))
    assert len(lines) == 1 and lines[0].startswith("WARNING: Smiling 0.550 is at chance level") and "0.540" in lines[0]
    assert at_chance(ran({"val_acc": 0.30}, {"acc": 0.05})) == []


def test_only_a_robust_run_at_chance_is_told_to_train_longer():
    from facelab.report.run_report import run_warnings

    robust = {"eps": 0.5, "norm": "l2", "steps": 1}
    at, above = ({"val_acc_per_attr": {"Young": acc}} for acc in (0.66, 0.80))
    assert [line.split(":")[0] for line in run_warnings(ran(at, {"Young": 0.665}))] == ["WARNING"]
    assert [line.split(":")[0] for line in run_warnings(ran(at, {"Young": 0.665}, robust))] == ["WARNING", "NOTE"]
    assert run_warnings(ran(above, {"Young": 0.665}, robust)) == []


def test_free_memory_counts_the_page_cache_and_the_cgroup_limit(tmp_path):
    """MemAvailable (the page cache a fresh cache build leaves is reclaimable), capped by the cgroup's room."""
    from facelab.training.batches import _cgroup_room, _meminfo_available

    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemFree:         1000000 kB\nMemAvailable:   20000000 kB\n")
    assert _meminfo_available(str(meminfo)) == 20000000 * 1024
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "memory.max").write_text("8589934592\n")
    (v2 / "memory.current").write_text("2147483648\n")
    assert _cgroup_room(str(v2)) == 6 * 2**30
    (v2 / "memory.max").write_text("max\n")
    assert _cgroup_room(str(v2)) is None
    v1 = tmp_path / "v1" / "memory"
    v1.mkdir(parents=True)
    (v1 / "memory.limit_in_bytes").write_text(str(2**63 - 4096))
    (v1 / "memory.usage_in_bytes").write_text("100")
    assert _cgroup_room(str(tmp_path / "v1")) is None
    assert _cgroup_room(str(tmp_path / "none")) is None


def test_splits_are_views_of_the_gathered_images_not_copies():
    """The training and validation splits index the one gathered tensor: the images are held once."""
    from facelab.training.config import TrainConfig
    from facelab.training.data_prep import prepare_data

    data = prepare_data(TrainConfig(spec="synth:120", size="32", attrs=["Smiling"]), quiet=True)
    train, valid = data.items("train"), data.items("valid")
    assert train.images is data.images and valid.images is data.images
    x8, y, _ = train.__getitems__([0, 3])
    expected, _ = data.batch(data.split_positions("train")[[0, 3]])
    assert torch.equal(x8, expected) and len(train) + len(valid) < len(data.split)


def test_robust_perturbation_stays_in_its_budget_and_raises_the_loss():
    """--robust's batch: within eps of the clean one (per value for linf, per image for l2), and worse for the model."""
    from facelab.training.batches import seeded
    from facelab.training.robust import perturbed

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 1))
    x, y = torch.randn(16, 3, 8, 8), torch.randint(0, 2, (16, 1)).float()
    loss = lambda v: torch.nn.functional.binary_cross_entropy_with_logits(model(v), y)  # noqa: E731
    for norm, eps in (("linf", 0.1), ("l2", 0.5)):
        moved = perturbed(loss, x, eps, norm, seeded(1))
        size = (moved - x).abs().amax() if norm == "linf" else (moved - x).flatten(1).norm(dim=1).max()
        assert float(size) <= eps * (1 + 1e-5), (norm, float(size))
        assert float(loss(moved)) > float(loss(x)), norm
        assert not moved.requires_grad


def test_a_robust_run_records_its_budget_and_bad_budgets_are_one_line(tmp_path):
    out = tmp_path / "robust"
    facelab.train(spec="synth:256", out=str(out), size="32", epochs=1, batch=64, robust=0.03, quiet=True)
    train = json.loads((out / "config.json").read_text())["train"]
    assert train["robust"] == 0.03 and train["robust_norm"] == "l2"  # L2 unless --robust-norm linf
    assert TrainConfig(robust=2.0).optim.robust == 2.0  # an L2 budget over a whole image may exceed one value's range
    with pytest.raises(FacelabError, match="--robust 2.0: give a budget above 0 in pixel units"):
        TrainConfig(robust=2.0, robust_norm="linf")
    with pytest.raises(FacelabError, match="--robust-norm 'l1'"):
        TrainConfig(robust_norm="l1")


def test_valid_share_pools_training_and_validation_images_and_splits_them_again():
    """--valid-share 0.1 is write-up 004's 90/10 split: of the training and validation images, a seeded tenth for
    validation; the test images stay where they were."""
    from facelab.training.data_prep import _with_validation

    split = np.array([0] * 800 + [1] * 100 + [2] * 100)
    again = _with_validation(split, seed=3, share=0.1)
    assert (again[:900] == 1).sum() == 90 and (again[900:] == 2).all()
    assert np.array_equal(again, _with_validation(split, seed=3, share=0.1))  # seeded
    assert np.array_equal(_with_validation(split, seed=3), split)  # the source's own split kept without a share
    with pytest.raises(FacelabError, match="--valid-share 1.5: out of range; give 0 to 1"):
        TrainConfig(spec="synth:10", valid_share=1.5)


@pytest.mark.slow
def test_two_machines_over_loopback_with_torchrun(tmp_path):
    """``torchrun --nnodes 2`` started twice on one machine, as on two: each "machine" builds the cache in its own
    folder (its first process builds it), each process holds its own shard, and the run finishes once."""
    from pathlib import Path

    facelab_exe = str(Path(sys.executable).with_name("facelab"))
    out = tmp_path / "run"
    procs = []
    for node in (0, 1):
        command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1", "--node-rank", str(node),
                   "--master-addr", "127.0.0.1", "--master-port", str(29500 + os.getpid() % 400), facelab_exe, "train", "synth:400",
                   "--size", "32", "--epochs", "1", "--batch", "32", "--num-nodes", "2", "--out", str(out), "--quiet"]  # fmt: skip
        env = os.environ | {"FACELAB_CACHE": str(tmp_path / f"cache_machine{node}"), "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results[0][1][-2000:] + results[1][1][-2000:]
    assert all(any((tmp_path / f"cache_machine{n}").iterdir()) for n in (0, 1))  # built once per machine
    assert json.loads((out / "summary.json").read_text())["epochs_done"] == 1
    ranks = [json.loads((out / "ranks" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["train_items"] for r in ranks] == [160, 160] and json.loads((out / "config.json").read_text())["batching"]["world"] == 2


def test_train_runs_in_the_runtime_it_is_given_and_refuses_settings_beside_a_config(tmp_path, monkeypatch):
    """The runtime passed is the one that trains (recorded as asked), and a keyword meant for the config beside a
    config is a TypeError, never silently dropped."""
    from facelab import hardware

    monkeypatch.setenv("FACELAB_THREADS", "1")
    cfg = TrainConfig(spec="synth:96", out=str(tmp_path / "r"), epochs=1, batch=32, max_train_batches=1, augment=False)
    summary = facelab.train(cfg, quiet=True, runtime=hardware.runtime("fp32", "cpu"))
    assert summary.runtime["precision"] == "fp32" and summary.runtime["threads"] == 1
    assert json.loads((tmp_path / "r" / "config.json").read_text())["train"]["precision"] == "fp32"
    with pytest.raises(TypeError, match="not both: epochs"):
        facelab.train(cfg, epochs=2)


def test_group_losses_weigh_every_group_alike_or_the_worst_most():
    """reweight: a group's images together weigh 1/G whatever its size; GroupDRO: the weight of the group with the
    higher loss grows step by step (Sagawa et al.'s exponentiated-gradient update)."""
    from facelab.training.group_balance import GroupLoss

    groups = torch.tensor([0] * 90 + [1] * 10)
    reweight = GroupLoss("reweight", groups, 2)
    losses = torch.cat([torch.zeros(90), torch.ones(10)])
    assert float(reweight(losses, groups)) == pytest.approx(0.5)  # the small group's mean loss counts half
    dro = GroupLoss("groupdro", groups, 2)
    for _ in range(50):
        dro(losses, groups)
    assert dro.weights[1] > 0.6 > dro.weights[0] and float(dro.weights.sum()) == pytest.approx(1.0)
    with pytest.raises(FacelabError, match="--task identity has no per-image loss"):
        TrainConfig(task="identity", balance="groupdro")
    assert TrainConfig(balance="Male").data.balancing() == ("undersample", ["Male"])  # as --balance ATTR always did


def test_undersampling_by_groups_cuts_every_training_group_to_the_smallest():
    from facelab.data.spec import open_spec
    from facelab.training.group_balance import group_ids, undersampled

    fs = open_spec("synth:600,correlate=Male:Pale_Skin=0.9")
    cut = undersampled(fs, ["Male", "Pale_Skin"], seed=0)
    ids, groups = group_ids(cut, ["Male", "Pale_Skin"])
    sizes = np.bincount(ids[cut.split == 0])
    assert len(groups) == 4 and len(set(sizes.tolist())) == 1 and (cut.split != 0).sum() == (fs.split != 0).sum()
