"""The device / precision / threads policy: chosen from what the machine reports, and really used."""

from __future__ import annotations

import json
import platform

import pytest
import torch

from facelab import hardware
from facelab.errors import FacelabError


@pytest.fixture
def cpu_kind(monkeypatch):
    """Pretend to be a CPU of a given kind: ``cpu_kind("AVX2", amx=False, avx512_bf16=False)``."""

    def pretend(capability: str, amx: bool = False, avx512_bf16: bool = False):
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)

    return pretend


@pytest.fixture(autouse=True)
def _fresh_choice():
    from facelab import progress

    progress._said.clear()
    yield


def test_auto_picks_fp32_on_avx2_and_bf16_where_native(cpu_kind):
    cpu_kind("AVX2")
    assert hardware.choose_precision("auto", "cpu") == "fp32"
    cpu_kind("AVX512", amx=True)
    assert hardware.choose_precision("auto", "cpu") == "bf16"
    cpu_kind("AVX512", avx512_bf16=True)
    assert hardware.choose_precision("auto", "cpu") == "bf16"
    cpu_kind("AVX512")  # AVX-512 without BF16 (Skylake-X): emulated
    assert hardware.choose_precision("auto", "cpu") == "fp32"
    cpu_kind("AVX2", amx=True)  # AMX present but ATen told to use AVX2 kernels (ATEN_CPU_CAPABILITY=avx2)
    assert hardware.choose_precision("auto", "cpu") == "fp32"


def test_forced_bf16_without_native_support_is_said_once(cpu_kind, capsys):
    cpu_kind("AVX2")
    assert hardware.choose_precision("bf16", "cpu") == "bf16"
    assert hardware.choose_precision("bf16", "cpu") == "bf16"
    err = capsys.readouterr().err
    assert err.count("emulated") == 1 and "AVX2" in err and "--precision auto" in err
    cpu_kind("AVX512", amx=True)
    hardware.choose_precision("bf16", "cpu")
    assert capsys.readouterr().err == ""


def test_bad_choices_are_one_line_errors():
    with pytest.raises(FacelabError, match="--precision 'fp16'"):
        hardware.choose_precision("fp16", "cpu")
    with pytest.raises(FacelabError, match="--device 'tpu'"):
        hardware.choose_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(FacelabError, match="no CUDA GPU"):
            hardware.choose_device("cuda")


def test_threads_are_the_share_of_available_cores(monkeypatch):
    monkeypatch.delenv("FACELAB_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setattr(hardware.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7})
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "1")
    assert hardware.thread_count() == 8
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    assert hardware.thread_count() == 4
    assert hardware.thread_count(cpu_ddp_processes=2) == 2
    monkeypatch.setattr(hardware.os, "sched_getaffinity", lambda pid: {3})  # pinned to one core
    assert hardware.thread_count(cpu_ddp_processes=2) == 1
    monkeypatch.setenv("FACELAB_THREADS", "3")
    assert hardware.thread_count() == 3
    monkeypatch.setenv("FACELAB_THREADS", "many")
    with pytest.raises(FacelabError, match="FACELAB_THREADS"):
        hardware.thread_count()


def test_the_trainer_uses_the_chosen_precision_and_the_run_records_it(cpu_kind, tmp_path):
    import lightning.pytorch as pl

    import facelab
    from facelab.training.config import TrainConfig

    seen = {}

    class Spy(pl.Callback):
        """Records the dtype the network really computed its training logits in."""

        def on_train_start(self, trainer, module):
            seen["precision"] = trainer.precision
            module.model.register_forward_hook(lambda m, i, out: seen.update(logits=out.dtype) if m.training else None)

    for kind, expected, lightning_precision in ((("AVX2",), "fp32", "32-true"), (("AVX512", True), "bf16", "bf16-mixed")):
        cpu_kind(*kind)
        out = tmp_path / expected
        facelab.train(TrainConfig(spec="synth:192", out=str(out), epochs=1, batch=64, max_train_batches=1), quiet=True, callbacks=[Spy()])
        assert seen == {"precision": lightning_precision, "logits": torch.bfloat16 if expected == "bf16" else torch.float32}
        described = json.loads((out / "config.json").read_text())["runtime"]
        assert described["precision"] == expected and described["cpu_capability"] == kind[0]
        assert {"device", "threads", "cores"} <= set(described)
        assert json.loads((out / "summary.json").read_text())["runtime"]["precision"] == expected


def test_cam_probes_use_the_runtime_they_are_given(cpu_kind):
    """On a CPU without native bf16 the maps are the exact fp32 ones; with bf16 chosen they are autocast; a runtime
    asked for fp32 gives the exact maps even where bf16 is native. Nothing is kept between calls."""
    from facelab.models import build_model
    from facelab.probes.cam import METHODS, default_layer

    torch.manual_seed(0)
    model = build_model("darknet64", 2).eval()
    x = torch.randn(2, 3, 64, 64)
    layer = default_layer(model)
    _, _, exact = METHODS["gradcam"].raw(model, x, layer, 0, binary=True, runtime=None)
    cpu_kind("AVX2")
    _, _, chosen = METHODS["gradcam"].raw(model, x, layer, 0, binary=True, runtime=hardware.probe_runtime())
    assert torch.equal(chosen, exact)
    cpu_kind("AVX512", amx=True)
    _, _, chosen = METHODS["gradcam"].raw(model, x, layer, 0, binary=True, runtime=hardware.probe_runtime())
    assert not torch.equal(chosen, exact)
    assert float((chosen - exact).abs().max()) < 0.15 * float(exact.abs().max())
    _, _, chosen = METHODS["gradcam"].raw(model, x, layer, 0, binary=True, runtime=hardware.probe_runtime("fp32"))
    assert torch.equal(chosen, exact)


def test_a_runtime_gives_new_runs_the_precision_asked_not_the_machines_answer(cpu_kind):
    """--precision reaches a run through the Runtime passed to it: config.json records what was asked (auto), so the
    run resumed on another machine chooses again; no process-wide setting leaks into the next TrainConfig."""
    from facelab.training.config import TrainConfig
    from facelab.training.engine import as_asked

    cpu_kind("AVX512", amx=True)
    rt = hardware.runtime("fp32")
    assert rt.precision == "fp32" and as_asked(TrainConfig(), rt).runtime.precision == "fp32"
    assert TrainConfig().runtime.precision == "auto"
    auto = hardware.runtime("auto")
    assert auto.precision == "bf16" and as_asked(TrainConfig(), auto).runtime.precision == "auto"


def test_resolving_a_runtime_changes_nothing_in_the_process_until_it_is_applied(monkeypatch):
    import torch

    monkeypatch.setenv("FACELAB_THREADS", "1")
    before = torch.get_num_threads()
    rt = hardware.runtime("fp32", "cpu")
    assert rt.threads == 1 and torch.get_num_threads() == before and not rt.heap_reuse
    try:
        assert rt.apply().threads == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


FAULTS_PER_STEP = """
import json, resource
from facelab import hardware
from facelab.bench import ComputeStep
step = ComputeStep("darknet64", 64, 128, hardware.runtime("fp32", "cpu").apply())  # its first activation: 34 MB
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    step()
print(json.dumps({"heap_reuse": step.rt.heap_reuse,
                  "faults": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 4}))
"""


@pytest.mark.slow
@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="heap reuse is glibc's mallopt; this C library is not glibc")
def test_training_steps_reuse_their_freed_buffers_instead_of_faulting_them_in_again():
    """A darknet64 training step (fp32, batch 128) with heap reuse (the default on the CPU) faults in a fraction of the
    fresh pages it needs under glibc's default (``FACELAB_HEAP_REUSE=0``: 25,000-33,000 a step measured alone, 9,200 beside
    another test run)."""
    import os
    import subprocess
    import sys

    def measured(setting: str) -> dict:
        env = {**os.environ, "FACELAB_HEAP_REUSE": setting, "FACELAB_THREADS": "1"}
        proc = subprocess.run([sys.executable, "-c", FAULTS_PER_STEP], capture_output=True, text=True, env=env, check=True)
        return json.loads(proc.stdout.strip().splitlines()[-1])

    reused, default = measured("1"), measured("0")
    assert reused["heap_reuse"] is True and default["heap_reuse"] is False
    assert default["faults"] > 5_000 and reused["faults"] < 0.25 * default["faults"], (reused, default)
