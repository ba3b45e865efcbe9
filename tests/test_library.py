"""facelab as a library and a plug-in host: what a notebook user, a newcomer adding a study, and another tool (ONNX
runtime, TensorBoard, a config file) rely on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import facelab
from helpers import run_cli

SRC = Path(facelab.__file__).parent
REPO = SRC.parent.parent


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("library") / "run"
    facelab.train(spec="synth:256", out=str(out), attrs=["Smiling", "Male"], epochs=1, batch=64, size="32", quiet=True)
    return out


def test_importing_facelab_leaves_the_notebooks_matplotlib_backend_alone():
    code = (
        "import matplotlib; matplotlib.use('svg'); import facelab, facelab.report.figures, facelab.probes.cam;"
        "import facelab.studies.youth; print(matplotlib.get_backend())"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "svg"


def test_picture_functions_return_their_figure_when_given_no_path(tmp_path):
    from matplotlib.figure import Figure

    from facelab.report.figures import bar_chart, line_plot

    fig = line_plot({"valid": [0.9, 0.5, 0.3]}, None, "epoch", "loss")
    assert isinstance(fig, Figure) and fig.axes[0].get_ylabel() == "loss"
    assert bar_chart(["a", "b"], [0.4, 0.6], tmp_path / "bars.png", "accuracy").stat().st_size > 1000


def test_face_dataset_feeds_a_plain_dataloader():
    from torch.utils.data import DataLoader

    ds = facelab.FaceDataset("synth:64", split="train", size=32)
    x, y = next(iter(DataLoader(ds, batch_size=8, shuffle=True)))
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32
    assert y.shape == (8, 1) and set(y.unique().tolist()) <= {0.0, 1.0}
    assert ds.outputs == ["Smiling"]
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_face_dataset_opens_a_cache_folder_with_its_own_spec_and_size():
    cache = facelab.build_cache(facelab.open_spec("synth:64"), (32, 32), quiet=True)
    valid = facelab.FaceDataset(cache.path, split="valid", task="identity", classes=5, min_images=1)
    image, target = valid[0]
    assert image.shape == (3, 32, 32) and target.dtype == torch.long


def test_train_is_a_plain_function_with_a_signature():
    import inspect

    assert inspect.isfunction(facelab.train)
    assert {"cfg", "resume", "quiet", "force"} <= set(inspect.signature(facelab.train).parameters)


def _commands(app, prefix: str = ""):
    for command in app.registered_commands:
        yield prefix + (command.name or command.callback.__name__), command.callback
    for group in app.registered_groups:
        yield from _commands(group.typer_instance, f"{prefix}{group.name} ")


def test_a_command_and_its_function_default_to_the_same_settings():
    """``facelab X --opt`` and ``facelab.X(opt=...)`` give the same result when the option is left out (``edit`` once
    stepped at 0.002 from the terminal and 0.01 from a notebook). Only ``quiet`` differs on purpose: progress bars on
    the terminal, none in a notebook; ``classes`` is text on the command line (comma-separated)."""
    import inspect

    from facelab.cli import app

    compared, differ = 0, []
    for name, callback in _commands(app):
        function = getattr(facelab, name.split()[-1].replace("-", "_"), None)
        if not inspect.isfunction(function):
            continue
        api = inspect.signature(function).parameters
        for option, param in inspect.signature(callback).parameters.items():
            cli = getattr(param.default, "default", param.default)
            if option == "quiet" or option not in api or api[option].default is inspect.Parameter.empty:
                continue
            if cli is None or cli is ... or callable(cli):
                continue
            cli = tuple(int(c) for c in cli.split(",")) if option == "classes" else cli
            compared += 1
            if cli != api[option].default:
                differ.append(f"{name} --{option}: {cli!r} vs facelab.{function.__name__}'s {api[option].default!r}")
    assert compared > 20 and differ == [], differ


@pytest.mark.slow
def test_onnx_export_runs_in_onnxruntime_and_matches_torch(tiny_run):
    from facelab.model_export import check_onnx, read_contract

    model_path = tiny_run / "model.onnx"
    run_cli("export", str(tiny_run), "--format", "onnx", "--out", str(model_path))
    contract = read_contract(model_path)
    assert contract["outputs"] == ["Smiling", "Male"] and contract["input"]["shape"] == [1, 3, 32, 32]
    x = torch.randn(4, 3, 32, 32)  # a batch of 4 through a model exported with batch 1: the batch axis is free
    expected = facelab.Run.open(tiny_run).model(x).detach().numpy()
    np.testing.assert_allclose(check_onnx(model_path, x.numpy()), expected, atol=1e-3)


def test_torchscript_export_loads_without_facelab_and_matches(tiny_run):
    path = facelab.export(tiny_run, "torchscript")
    assert path == tiny_run / "model.torchscript.pt"
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(torch.jit.load(str(path))(x), facelab.Run.open(tiny_run).model(x), atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_unknown_export_format_is_one_line():
    proc = run_cli("export", "nowhere", "--format", "tflite", check=False)
    assert proc.returncode == 2 and "use one of csv, onnx, torchscript" in proc.stderr


@pytest.mark.slow
def test_logger_tensorboard_writes_an_event_file_beside_metrics_csv(tmp_path):
    out = tmp_path / "tb"
    run_cli("train", "synth:256", "--out", str(out), "--epochs", "2", "--size", "32", "--batch", "64", "--logger", "tensorboard", "--quiet")
    events = list((out / "tensorboard").rglob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    assert (out / "metrics.csv").exists()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    assert [e.step for e in acc.Scalars("valid/loss")] == [0, 1]


@pytest.mark.slow
def test_logger_mlflow_records_each_epoch_in_the_run_folder(tmp_path):
    out = tmp_path / "mlf"
    run_cli("train", "synth:256", "--out", str(out), "--epochs", "2", "--size", "32", "--batch", "64", "--logger", "mlflow", "--quiet")
    history = list((out / "mlruns").rglob("metrics/valid/loss"))
    assert len(history) == 1 and len(history[0].read_text().splitlines()) == 2  # one line per epoch


@pytest.mark.slow
def test_config_file_fills_options_the_command_line_did_not_give(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('attrs = ["Male", "Smiling"]\nepochs = 1\nsize = "32"\nbatch = 64\nlr = 0.02\n')
    out = tmp_path / "run"
    run_cli("train", "synth:256", "--out", str(out), "--config", str(cfg), "--lr", "0.03", "--quiet")
    saved = json.loads((out / "config.json").read_text())["train"]
    assert saved["attrs"] == ["Male", "Smiling"] and saved["epochs"] == 1 and saved["size"] == "32"
    assert saved["lr"] == 0.03  # typed on the command line: it wins over the file


@pytest.mark.slow
def test_config_file_with_an_unknown_key_names_it(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("epochs: 1\nlearning_rate: 0.1\n")
    proc = run_cli("train", "synth:64", "--config", str(cfg), check=False)
    assert proc.returncode == 2 and "no option learning_rate" in proc.stderr and str(cfg) in proc.stderr


def test_a_study_is_named_only_in_its_own_module_and_its_test():
    """Adding a study is one file: no other module of the package names it (the registry finds it)."""
    naming = [p.relative_to(SRC).as_posix() for p in SRC.rglob("*.py") if "youth" in p.read_text()]
    assert naming == ["studies/youth.py"]


@pytest.mark.slow
def test_every_registered_study_has_its_command_with_its_own_options():
    from facelab.studies.registry import all_studies

    for study in all_studies():
        help_text = run_cli("study", study.name, "--help").stdout
        for option in study.options:
            assert f"--{option.name.replace('_', '-')}" in help_text
        assert getattr(facelab, f"{study.name}_study") is study.run


def test_the_command_line_module_only_wires():
    assert len((SRC / "cli.py").read_text().splitlines()) <= 600


def test_precision_is_passed_not_kept():
    """No process-wide precision: the hardware module keeps no requested state a later call could inherit."""
    from facelab import hardware

    assert not [name for name in vars(hardware) if name.startswith("_requested") or name in ("use_hardware", "current")]


@pytest.mark.slow
def test_the_documented_example_study_is_one_file_that_runs(tmp_path, monkeypatch):
    """docs/layout.md's example study, loaded as a module of facelab.studies (imported as Python imports one: in
    sys.modules while it runs): its command is built from STUDY alone and it runs through the registry's machinery
    (plan, trained run, report) to a typed summary, read back from its summary.json, with its headline."""
    import re
    import sys
    import textwrap
    import types

    from facelab.cli_options import study_command

    code = re.search(r"```python\n(.*?)```", (REPO / "docs" / "layout.md").read_text(), re.S).group(1)
    module = types.ModuleType("facelab.studies.glasses")
    module.__package__ = "facelab.studies"
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(textwrap.dedent(code), "glasses.py", "exec"), module.__dict__)
    study = module.STUDY
    assert study.name == "glasses" and callable(study_command(study))
    summary = study.run(out=tmp_path / "glasses", quiet=True, **study.quick)
    assert (tmp_path / "glasses" / "report.html").exists() and study.headline(summary)[0].startswith("accuracy ")
    assert module.GlassesResult.read(tmp_path / "glasses") == summary


def test_the_command_line_starts_without_loading_torch():
    """Building every command (options declared once, from TrainConfig's fields and the study registry) imports no
    network code: facelab --help and facelab data info answer at once."""
    code = (
        "import sys, facelab.cli, facelab.studies.registry as r; [r.get_study(n) for n in r.study_names()]; print('torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_every_public_name_stays_what_it_is_after_its_modules_are_imported():
    """A public function named like a module of the package would be replaced by that module once imported
    (facelab.train was a package once): none is."""
    import importlib

    for name in facelab.__all__:
        getattr(facelab, name)
    for module in ("training.engine", "model_export", "demo_run", "studies", "run"):
        importlib.import_module(f"facelab.{module}")
    assert all(callable(getattr(facelab, name)) for name in facelab.__all__ if name != "__version__")


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("run.ini", "{}", "give a .toml, .yaml, .yml or .json file"),
        ("run.json", "{", "not readable as json"),
        ("run.toml", "a = [", "not readable as toml"),
        ("run.yaml", "a: [1\n", "not readable as yaml"),
    ],
)
def test_a_bad_config_file_is_one_line_naming_it(tmp_path, name, text, message):
    from facelab.cli_options import read_config_file
    from facelab.errors import FacelabError

    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(FacelabError, match=message) as caught:
        read_config_file(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_every_typed_result_can_be_read_back_from_its_json():
    """Each result class (facelab.results.Summary) names the types of its fields so that ``from_json`` rebuilds nested
    results: every annotation resolves at run time (a name imported only for the type checker would not)."""
    import importlib
    import pkgutil

    from facelab.results import Summary

    for info in pkgutil.walk_packages(facelab.__path__, "facelab."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    found, stack = [], list(Summary.__subclasses__())
    while stack:
        cls = stack.pop()
        found.append(cls)
        stack += cls.__subclasses__()
    assert len(found) >= 40, [c.__name__ for c in found]
    unresolved = []
    for cls in found:
        try:
            cls.field_types()
        except NameError as exc:
            unresolved.append(f"{cls.__module__}.{cls.__name__}: {exc}")
    assert unresolved == []
