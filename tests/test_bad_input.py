"""Bad input as a new user types it: one line, exit 2, the file tree as it was, the user's files kept."""

import json
import shutil

import pytest

from facelab.errors import FacelabError
from facelab.training.config import TrainConfig
from helpers import run_cli
from test_fuzz import RUN_COMMANDS, facelab, run_command_line


def tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def one_line_exit_2(proc, *words):
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("note:")]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    for word in words:
        assert word in lines[0], (word, lines[0])


@pytest.mark.parametrize(
    "given, said",
    [
        ({"size": "0"}, "--size 0: out of range"),
        ({"size": "-8"}, "--size -8: out of range"),
        ({"size": "64x0"}, "--size 64x0: out of range"),
        ({"epochs": "lots"}, "--epochs 'lots': expected a whole number"),
        ({"epochs": 0}, "--epochs 0: out of range; give 1 to 100000"),
        ({"lr": -0.1}, "--lr -0.1: out of range; give 1e-12 or more"),
        ({"batch": 10**9}, "--batch 1000000000: out of range"),
        ({"momentum": "high"}, "--momentum 'high': expected a number"),
        ({"classes": 1, "task": "identity"}, "--classes 1: out of range; give 2 or more"),
    ],
)
def test_a_train_setting_out_of_range_or_of_the_wrong_type_is_one_line(given, said):
    with pytest.raises(FacelabError) as caught:
        TrainConfig(**given)
    assert said in str(caught.value) and "\n" not in str(caught.value)


def test_a_whole_number_is_taken_where_a_number_is_asked():
    assert TrainConfig(lr=1).optim.lr == 1.0 and TrainConfig(size=96).data.size == "96"


def test_the_help_of_a_bounded_option_shows_its_range():
    from facelab.training.config import cli_options

    assert "Range: 1 to 100000." in cli_options()["epochs"][2]
    assert "16 to 1024 a side" in cli_options()["size"][2]


@pytest.mark.slow
def test_size_zero_stops_before_any_folder_or_cache_is_made(tmp_path):
    cache, out = tmp_path / "cache", tmp_path / "run"
    for size in ("0", "-8"):
        proc = run_cli("train", "synth:64", "--size", size, "--out", str(out), check=False, env={"FACELAB_CACHE": str(cache)})
        one_line_exit_2(proc, f"--size {size}")
    assert not out.exists() and not cache.exists()


@pytest.mark.slow
def test_a_failed_train_leaves_no_marker_only_folder(tmp_path):
    out = tmp_path / "run"
    for args in (["celeba:/no/such/folder"], ["synth:64", "--attrs", "No_Such_Attribute"]):
        proc = run_cli("train", *args, "--out", str(out), check=False)
        one_line_exit_2(proc)
        assert not out.exists(), args


@pytest.fixture(scope="module")
def damaged_run(smiling_run, tmp_path_factory):
    """A copy of a finished run whose best checkpoint was cut short (an interrupted copy, a full disk)."""
    run = tmp_path_factory.mktemp("damaged") / "run"
    shutil.copytree(smiling_run, run)
    best = run / "checkpoints" / "best.ckpt"
    best.write_bytes(best.read_bytes()[:4096])
    return run


@pytest.mark.slow
@pytest.mark.parametrize("command", RUN_COMMANDS)
def test_a_damaged_checkpoint_is_one_line_naming_the_file_and_the_way_back(damaged_run, command, capsys, monkeypatch):
    before = tree(damaged_run)
    code, lines = facelab(run_command_line(command, damaged_run), capsys, monkeypatch)
    assert code == 2 and len(lines) == 1, lines
    assert "best.ckpt: damaged or incomplete checkpoint" in lines[0] and "--resume" in lines[0], lines
    assert tree(damaged_run) == before


@pytest.mark.slow
def test_a_runs_config_json_is_a_valid_config(smiling_run, tmp_path):
    """facelab train --config RUN/config.json --out NEW trains with RUN's settings."""
    proc = run_cli("train", "--config", str(smiling_run / "config.json"), "--out", str(tmp_path / "again"), "--epochs", "1", "--quiet")
    assert json.loads(proc.stdout)["epochs_done"] == 1
    old = json.loads((smiling_run / "config.json").read_text())["train"]
    new = json.loads((tmp_path / "again" / "config.json").read_text())["train"]
    differ = {k for k in old if old[k] != new[k]}
    assert differ <= {"out", "epochs", "from_task"}, differ


# The settings' sections: flat on the command line and in config.json, typed sections in the code
SAVED_KEYS = (
    "task out seed from_task spec attrs classes min_images points size crop channels min_score cache valid_share balance groups "
    "arch weights convs head epochs batch lr opt momentum wd schedule min_steps max_train_batches augment flip inverted_fraction "
    "robust robust_norm robust_steps precision device devices num_nodes logger"
).split()


def test_a_config_is_made_of_sections_and_saved_one_level_deep():
    import dataclasses

    from facelab.training.sections import OptimSettings

    cfg = TrainConfig(spec="synth:100", lr=0.01, arch="resnet18", precision="fp32")
    assert (cfg.data.spec, cfg.optim.lr, cfg.model.arch, cfg.runtime.precision) == ("synth:100", 0.01, "resnet18", "fp32")
    assert sorted(cfg.flat()) == sorted(SAVED_KEYS)  # config.json's "train" keys: the ones runs saved before the sections
    assert TrainConfig.saved(cfg.flat()) == cfg
    handed = OptimSettings(lr=0.5, epochs=2)
    mixed = TrainConfig(optim=handed, lr=0.1)  # an option named beside its section wins
    assert (mixed.optim.lr, mixed.optim.epochs) == (0.1, 2) and (handed.lr, handed.batch) == (0.5, None)  # not changed
    nested = TrainConfig(optim={"lr": 0.02}, epochs=2)  # a section as a nested config file holds it
    assert (nested.optim.lr, nested.optim.epochs) == (0.02, 2)
    assert cfg.changed(epochs=7).optim.epochs == 7 == dataclasses.replace(cfg, epochs=7).optim.epochs
    assert cfg.optim.epochs == 3
    with pytest.raises(TypeError, match="unknown settings lrr"):
        TrainConfig(lrr=0.1)
    with pytest.raises(FacelabError, match="--lr 'fast': expected a number"):
        TrainConfig(optim=OptimSettings(lr="fast"))  # type: ignore[arg-type]


def test_a_config_file_may_group_its_options_in_sections(tmp_path):
    from facelab.cli_options import read_config_file

    toml = tmp_path / "run.toml"
    toml.write_text('task = "attr"\n[optim]\nlr = 0.02\nrobust-steps = 2\n[data]\nsize = "32"\n')
    assert read_config_file(toml) == {"task": "attr", "lr": 0.02, "robust_steps": 2, "size": "32"}
    yaml = tmp_path / "run.yaml"
    yaml.write_text("model:\n  arch: resnet18\n")
    assert read_config_file(yaml) == {"arch": "resnet18"}
    toml.write_text("[model]\nlr = 0.02\n")
    with pytest.raises(FacelabError, match=r"run.toml: lr is no option of \[model\]; it belongs in \[optim\]$"):
        read_config_file(toml)
    toml.write_text("lr = 0.1\n[optim]\nlr = 0.02\n")
    with pytest.raises(FacelabError, match="lr is given twice"):
        read_config_file(toml)
