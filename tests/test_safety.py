"""Nothing lost, nothing silent: facelab deletes only what it wrote, and a signal leaves a resumable run."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

import facelab
from facelab.errors import FacelabError
from facelab.files import MARKER
from facelab.training.config import TrainConfig
from facelab.training.run_folder import RUN_FILES, RunFolder
from helpers import run_cli

SMALL = dict(spec="synth:1200", attrs=["Eyeglasses", "Smiling"], size="32", epochs=3, batch=64)
SMALL_ARGS = ["synth:1200", "--attrs", "Eyeglasses,Smiling", "--size", "32", "--epochs", "3", "--batch", "64", "--quiet"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "whole"
    return facelab.train(TrainConfig(out=str(out), **SMALL), quiet=True)


def user_folder(tmp_path, name="p"):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "thesis.txt").write_text("x")
    return folder


@pytest.mark.slow
def test_cache_refuses_a_folder_with_user_files(tmp_path):
    folder = user_folder(tmp_path)
    proc = run_cli("data", "cache", "synth:50", "--out", str(folder), "--size", "32", check=False)
    assert proc.returncode == 2 and "did not write" in proc.stderr and "Traceback" not in proc.stderr
    assert (folder / "thesis.txt").read_text() == "x" and [p.name for p in folder.iterdir()] == ["thesis.txt"]


def test_cache_rebuild_removes_only_its_own_files(tmp_path):
    from facelab.data.cache import build_cache
    from facelab.data.spec import open_spec

    out = tmp_path / "cache"
    build_cache(open_spec("synth:40"), (32, 32), out, quiet=True)
    (out / "notes.txt").write_text("mine")
    rebuilt = build_cache(open_spec("synth:60"), (32, 32), out, quiet=True)  # other data: rebuilt in place
    assert len(rebuilt) == 60 and (out / "notes.txt").read_text() == "mine"


@pytest.mark.slow
def test_demo_never_deletes_the_working_folder(tmp_path):
    work = user_folder(tmp_path, "work")
    proc = subprocess.run(
        [sys.executable, "-m", "facelab", "demo", "--quick", "--out", "."], cwd=work, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2 and "did not write" in proc.stderr
    assert (work / "thesis.txt").read_text() == "x"


@pytest.mark.slow
def test_train_eval_and_probes_refuse_folders_with_user_files(tmp_path, uninterrupted):
    folder = user_folder(tmp_path)
    proc = run_cli("train", *SMALL_ARGS, "--out", str(folder), check=False)
    assert proc.returncode == 2 and "did not write" in proc.stderr
    run = tmp_path / "run"
    facelab.train(TrainConfig(out=str(run), **SMALL | {"epochs": 1}), quiet=True)
    with pytest.raises(FacelabError, match="did not write"):
        facelab.evaluate(run, out=folder)
    for probe, kwargs in (
        (facelab.filters, {}),
        (facelab.cam, {"source": "synth:8#1"}),
        (facelab.audit, {"by": ["Smiling"]}),
        (facelab.activations, {"image": "synth:8#1"}),
    ):
        with pytest.raises(FacelabError, match="did not write"):
            probe(run, out=folder, **kwargs)
    assert [p.name for p in folder.iterdir()] == ["thesis.txt"]
    assert json.loads((run / MARKER).read_text())["kind"] == "run"


def test_force_restarts_a_run_keeping_user_files(tmp_path):
    run = tmp_path / "run"
    cfg = TrainConfig(out=str(run), **SMALL | {"epochs": 1})
    facelab.train(cfg, quiet=True)
    (run / "my_notes.txt").write_text("keep")
    (run / "figures" / "mine.png").write_bytes(b"the user's own picture, inside facelab's figures folder")
    with pytest.raises(FacelabError, match="--force"):
        facelab.train(cfg, quiet=True)
    facelab.train(cfg, quiet=True, force=True)
    assert (run / "my_notes.txt").read_text() == "keep" and (run / "summary.json").exists()
    assert (run / "figures" / "mine.png").read_bytes().startswith(b"the user's own")
    assert (run / "figures" / "curves.png").exists() or any((run / "figures").glob("*.png"))


def test_a_training_that_fails_before_it_starts_leaves_no_folder(tmp_path):
    for bad in ({"spec": "celeba:/no/such/folder"}, {"attrs": ["No_Such_Attribute"]}):
        out = tmp_path / "new_run"
        with pytest.raises(FacelabError):
            facelab.train(TrainConfig(out=str(out), **SMALL | {"epochs": 1} | bad), quiet=True)
        assert not out.exists(), bad
    mine = tmp_path / "mine"
    mine.mkdir()  # an empty folder the user made: facelab's only while it runs, and left as it was
    with pytest.raises(FacelabError):
        facelab.train(TrainConfig(out=str(mine), **SMALL | {"attrs": ["No_Such_Attribute"]}), quiet=True)
    assert mine.exists()


SIGNALLER = """
import os, signal, sys
import lightning.pytorch as pl
import facelab.training.engine as engine

EPOCH, BATCH = int(sys.argv[1]), int(sys.argv[2])

class TermMidEpoch(pl.Callback):
    def on_train_batch_start(self, trainer, module, batch, idx):
        if trainer.current_epoch == EPOCH and idx == BATCH:
            os.kill(os.getpid(), signal.SIGTERM)

if EPOCH < 0:  # while the data are being prepared, before any batch is trained
    prepare = engine.prepare_data

    def prepare_then_signal(*args, **kwargs):
        data = prepare(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        return data

    engine.prepare_data = prepare_then_signal
real = engine._trainer
engine._trainer = lambda cfg, run, rt, quiet, callbacks, task: real(cfg, run, rt, quiet, [*callbacks, TermMidEpoch()], task)
from facelab.cli import main
sys.argv = ["facelab", "train", *sys.argv[3:]]
main()
"""


def _train_until_sigterm(out, epoch: int, batch: int) -> subprocess.CompletedProcess:
    script = textwrap.dedent(SIGNALLER)
    return subprocess.run(
        [sys.executable, "-c", script, str(epoch), str(batch), *SMALL_ARGS, "--out", str(out)], capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
@pytest.mark.parametrize("epoch", [1, 0, -1], ids=["mid-epoch-1", "mid-epoch-0-before-any-epoch-checkpoint", "before-any-batch"])
def test_sigterm_stops_with_143_and_resume_ends_like_an_uninterrupted_run(tmp_path, uninterrupted, epoch):
    out = tmp_path / "stopped"
    proc = _train_until_sigterm(out, epoch, 5)
    assert proc.returncode == 143, proc.stderr[-2000:]
    assert "stopped by SIGTERM" in proc.stderr and f"--resume {out}" in proc.stderr and "Traceback" not in proc.stderr
    state = json.loads((out / "state.json").read_text())
    assert state["status"] == "stopped" and state["signal"] == "SIGTERM" and state["epoch"] == max(epoch, 0)
    # where it stood: after the batch the signal arrived in (batch 6 of the epoch), saved mid-epoch
    assert state["batches_done_in_epoch"] == (6 if epoch >= 0 else 0)
    assert (out / "checkpoints" / "last.ckpt").exists() == (epoch >= 0) and not (out / "summary.json").exists()
    run_cli("train", "--resume", str(out), "--quiet")
    resumed = json.loads((out / "summary.json").read_text())
    assert resumed["final"] == uninterrupted.final and resumed["epochs_done"] == 3
    rows = RunFolder(out).read_metrics()
    assert [(r["epoch"], r["split"]) for r in rows] == [(e, s) for e in range(3) for s in ("train", "valid")]
    assert json.loads((out / "state.json").read_text())["status"] == "finished"


@pytest.mark.slow
def test_a_task_the_data_cannot_serve_says_so_once(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    from PIL import Image

    for k in range(3):
        Image.new("RGB", (40, 40), (k * 60, 90, 90)).save(photos / f"{k}.png")
    proc = run_cli("train", f"folder:{photos}", "--task", "keypoints", "--out", str(tmp_path / "r"), check=False)
    assert proc.returncode == 2 and "--task keypoints needs landmarks" in proc.stderr and "--task --task" not in proc.stderr
    proc = run_cli("data", "info", str(photos), check=False)
    assert proc.returncode == 2 and f"folder:{photos}" in proc.stderr


@pytest.mark.slow
def test_unknown_arch_is_refused_before_any_cache_is_built(tmp_path):
    proc = run_cli(
        "train",
        "synth:100",
        "--arch",
        "resnet9000",
        "--out",
        str(tmp_path / "r"),
        check=False,
        env={"FACELAB_CACHE": str(tmp_path / "cache")},
    )
    assert proc.returncode == 2 and "unknown --arch 'resnet9000'" in proc.stderr
    assert not (tmp_path / "cache").exists()


def test_progress_bar_counts_epochs_from_one():
    from types import SimpleNamespace

    from facelab.training.engine import _progress_bar_class

    bar = _progress_bar_class()()
    bar._trainer = SimpleNamespace(max_epochs=5)
    assert bar._get_train_description(4) == "Epoch 5/5"


def test_too_few_validation_images_are_said(tmp_path, capsys):
    facelab.train(
        TrainConfig(spec="synth:40,ids=10", task="identity", classes=10, size="32", epochs=1, batch=16, out=str(tmp_path / "ids"))
    )
    assert "validation images" in capsys.readouterr().err


@pytest.mark.slow
def test_data_synth_prints_no_opencv_warning(tmp_path):
    proc = run_cli("data", "synth", str(tmp_path / "faces"), "--n", "8", "--size", "48")
    assert "WARN" not in proc.stderr and "WARN" not in proc.stdout and len(list((tmp_path / "faces" / "img_align_celeba").iterdir())) == 8


def test_a_fresh_start_removes_only_what_facelab_recorded(tmp_path):
    from facelab.files import prepare_output, recording_output

    out = prepare_output(tmp_path / "demo", "demo", fresh=True)
    with recording_output(out):
        (out / "index.html").write_text("facelab's")
        prepare_output(out / "attributes", "run", owned=RUN_FILES)
        (out / "attributes" / "config.json").write_text("{}")
    (out / "attributes" / "my_notes.txt").write_text("user")  # added later, inside facelab's run folder
    (out / "thesis.txt").write_text("user")
    prepare_output(out, "demo", fresh=True)
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "attributes", "thesis.txt"]
    assert sorted(p.name for p in (out / "attributes").iterdir()) == [MARKER, "my_notes.txt"]
    with pytest.raises(FacelabError, match="facelab's demo folder, not a run folder"):
        prepare_output(out, "run")


@pytest.mark.slow
def test_an_output_file_facelab_did_not_write_is_never_overwritten(tmp_path):
    from facelab.web.webcam import webcam

    mine = tmp_path / "sheet.png"
    mine.write_bytes(b"my own picture")
    proc = run_cli("data", "show", "synth:4", "--out", str(mine), check=False)
    assert proc.returncode == 2 and "facelab did not write it" in proc.stderr and mine.read_bytes() == b"my own picture"
    ours = tmp_path / "ours.png"
    run_cli("data", "show", "synth:4", "--out", str(ours))
    run_cli("data", "show", "synth:4", "--n", "2", "--out", str(ours))  # its own file: written again
    video = tmp_path / "holiday.webm"
    video.write_bytes(b"my own video")
    with pytest.raises(FacelabError, match="facelab did not write it"):
        webcam([tmp_path / "no_run"], "0", video)
    assert video.read_bytes() == b"my own video"


DDP_SIGNALLER = """
import os, signal, sys
import lightning.pytorch as pl
import facelab.training.engine as engine

class TermRankOne(pl.Callback):
    def on_train_batch_start(self, trainer, module, batch, idx):
        with open(os.path.join(os.environ["LAST_BATCH_DIR"], f"rank{trainer.global_rank}"), "w") as fh:
            fh.write(f"{trainer.current_epoch} {idx}")  # the last batch each process began
        if trainer.global_rank == 1 and trainer.current_epoch == 0 and idx == 3:
            # rank 1 alone has seen SIGTERM: what its handler notes (a real signal on a gloo process may interrupt
            # gloo's own threads mid-read; rank 0's signal Lightning passes on to the others)
            stopper = next(c for c in trainer.callbacks if type(c).__name__ == "StopAtBatchEnd")
            stopper.flag.note(signal.SIGTERM, None)

real = engine._trainer
engine._trainer = lambda cfg, run, rt, quiet, callbacks, task: real(cfg, run, rt, quiet, [*callbacks, TermRankOne()], task)
from facelab.cli import main
if sys.argv[1] != "train":  # the first start; the launcher starts rank 1 with these arguments again
    sys.argv = [sys.argv[0], "train", *sys.argv[1:]]
main()
"""


@pytest.mark.slow
def test_a_signal_one_ddp_process_sees_stops_every_process_at_the_same_batch(tmp_path):
    """The processes agree on the stop before the checkpoint's barrier: no hang, one resumable checkpoint, 143."""
    script = tmp_path / "signal_rank1.py"  # a file: Lightning's launcher starts the script again for rank 1
    script.write_text(textwrap.dedent(DDP_SIGNALLER))
    out = tmp_path / "ddp"
    args = ["synth:600", "--size", "32", "--epochs", "2", "--batch", "32", "--devices", "2", "--out", str(out), "--quiet"]
    env = os.environ | {"OMP_NUM_THREADS": "1", "LAST_BATCH_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 143, proc.stderr[-2000:]
    assert [(tmp_path / f"rank{r}").read_text() for r in (0, 1)] == ["0 3", "0 3"]  # the same batch for both, not rank 1 alone
    state = json.loads((out / "state.json").read_text())
    assert state["status"] == "stopped" and state["epoch"] == 0 and state["batches_done_in_epoch"] == 4
    resumed = run_cli("train", "--resume", str(out), "--quiet", env={"OMP_NUM_THREADS": "1"})
    assert resumed.returncode == 0 and json.loads((out / "summary.json").read_text())["epochs_done"] == 2
