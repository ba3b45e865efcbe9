"""Fast unit tests of the pure pieces the end-to-end tests go through: sizes, crops, knobs, tasks and their metrics."""

import re

import numpy as np
import pytest
import torch

from facelab.data.cache import parse_size
from facelab.data.detect import crop_face, resize_to
from facelab.data.synth import Knob
from facelab.errors import FacelabError
from facelab.report.run_report import summary_columns
from facelab.run import InputContract
from facelab.training.config import TrainConfig
from facelab.training.keypoint_task import KeypointTask
from facelab.training.task_registry import TASKS, restored_task, task_for
from facelab.training.tasks import AttrTask, IdentityTask, MetricSums


@pytest.mark.parametrize("text, size", [("64", (64, 64)), (48, (48, 48)), ("80x60", (80, 60)), ("80X60", (80, 60))])
def test_sizes_parse_as_width_by_height(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "64x", "x64", "big", "6.5"])
def test_a_bad_size_names_the_option_and_the_form(text):
    with pytest.raises(FacelabError, match="--size .*WIDTHxHEIGHT"):
        parse_size(text)


def test_a_face_crop_maps_back_to_the_photo():
    photo = np.zeros((120, 200, 3), np.uint8)
    photo[40:60, 90:110] = 255  # a white square at the box's centre
    crop, to_photo = crop_face(photo, (80, 30, 40, 40), (32, 32), margin=0.25)
    assert crop.shape == (32, 32, 3)
    ys, xs = np.nonzero(crop[..., 0] > 127)
    centre = to_photo[:, :2] @ [xs.mean(), ys.mean()] + to_photo[:, 2]  # crop pixels -> photo pixels
    np.testing.assert_allclose(centre, (99.5, 49.5), atol=1.0)


def test_resize_to_centre_crops_to_the_aspect():
    img = np.zeros((100, 300, 3), np.uint8)
    img[:, 100:200] = 255  # the centre third: what a square crop keeps
    out = resize_to(img, (32, 32))
    assert out.shape == (32, 32, 3) and out.min() == 255


@pytest.mark.parametrize(
    "kind, text, parsed",
    [
        ("correlate", "Male:Bald=0.9", ("Male", "Bald", 0.9, ("train",))),
        ("spurious", "Male:background=0.95@train,valid", ("Male", "background", 0.95, ("train", "valid"))),
        ("imbalance", "Smiling=0.3", ("Smiling", None, 0.3, ("train",))),
    ],
)
def test_knobs_parse(kind, text, parsed):
    k = Knob.parse(kind, text)
    assert (k.target, k.other, k.p, k.splits) == parsed


@pytest.mark.parametrize("kind, text", [("imbalance", "Smiling=1.5"), ("spurious", "Male:Bald=0.9"), ("correlate", "Nope:Bald=0.5")])
def test_bad_knobs_say_the_form(kind, text):
    with pytest.raises(FacelabError, match=f"--{kind}"):
        Knob.parse(kind, text)


def test_metric_sums_add_up_batches_as_one():
    task = AttrTask(attrs=["A", "B"])
    logits = torch.tensor([[1.0, -1.0], [1.0, 1.0], [-1.0, 1.0], [-2.0, -1.0]])
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    whole, parts = MetricSums(task), MetricSums(task)
    whole.add(task.loss(logits, y), logits, y)
    for sl in (slice(0, 1), slice(1, 4)):
        parts.add(task.loss(logits[sl], y[sl]), logits[sl], y[sl])
    a, b = whole.result(), parts.result()
    assert a["n"] == b["n"] == 4 and a["acc_A"] == b["acc_A"] == 0.75 and a["acc_B"] == b["acc_B"] == 0.75
    assert a["acc"] == 0.75 and a["loss"] == pytest.approx(b["loss"])


def test_identity_accuracy_and_names():
    task = IdentityTask(classes=3, class_names=["x", "y", "z"])
    sums = MetricSums(task)
    logits, y = torch.tensor([[3.0, 0, 0], [0, 3.0, 0], [0, 3.0, 0]]), torch.tensor([0, 1, 2])
    sums.add(task.loss(logits, y), logits, y)
    assert sums.result()["acc"] == pytest.approx(2 / 3)
    assert task.output_names() == ["x", "y", "z"] and task.explained_output("y") == 1 and task.explained_output(None) is None
    with pytest.raises(FacelabError, match="--target 'w'"):
        task.explained_output("w")


def test_a_task_rebuilds_from_its_description():
    cfg = TrainConfig(task="keypoints", points="nose", size="80x60")
    task = task_for(cfg)
    task.select(type("FS", (), {"require": lambda *a: None, "n_landmarks": 58, "mirror": None, "spec": "imm:x"})(), 0)
    again = restored_task(cfg, task.describe())
    assert (again.indices, again.n_outputs, again.size) == (task.indices, 2, (80, 60))
    assert isinstance(again, KeypointTask) and again.points and not again.labels


def test_every_registered_task_says_what_it_can_do():
    for entry in TASKS.entries():
        cls = entry.item
        assert cls.name == entry.name and entry.help == cls.about and cls.monitor[1] in ("min", "max")
        assert cls.labels or not cls.binary


def test_the_input_contract_normalises_as_training_did():
    contract = InputContract((4, 2), 1, None)
    img = np.full((2, 4, 3), 255, np.uint8)
    assert contract.pixels(img).shape == (1, 1, 2, 4) and float(contract.pixels(img).max()) == pytest.approx(1.0)
    torch.testing.assert_close(contract.image_input(img), contract.normalise(contract.pixels(img)))


def test_summary_columns_flatten_per_attribute_figures():
    block = {"val_loss": 0.1, "val_acc": 0.9, "val_acc_per_attr": {"Male": 0.95}, "epoch": 2}
    assert summary_columns(block) == {"val_loss": 0.1, "val_acc": 0.9, "acc Male": 0.95}


@pytest.mark.slow
def test_the_rotation_task_learns_what_the_mean_cannot(tmp_path):
    """The example task (one file + one registry line): head rotation regressed well below the always-the-mean error."""
    import facelab

    s = facelab.train(
        TrainConfig(spec="synth:1200", out=str(tmp_path / "rot"), task="rotation", size="48", epochs=4, batch=64, opt="adam"), quiet=True
    )
    assert s.task == "rotation" and s.final["val_mae_deg"] < 0.6 * s.fields["baseline_mean"]["val_mae_deg"]
    assert (tmp_path / "rot" / "report.html").exists() and "mae_deg" in (tmp_path / "rot" / "report.html").read_text()


def test_a_whole_photo_crop_maps_back_to_the_photo():
    from facelab.data.detect import crop_for_network

    photo = np.zeros((120, 200, 3), np.uint8)
    photo[50:70, 110:130] = 255  # inside the centred 120x120 region
    crop = crop_for_network(photo, None, (40, 40), margin=0.25)
    assert not crop.detected and crop.face.box == (40, 0, 120, 120)
    ys, xs = np.nonzero(crop.image[..., 0] > 127)
    centre = crop.points_to_photo(np.array([xs.mean(), ys.mean()]))
    np.testing.assert_allclose(centre, (119.5, 59.5), atol=1.0)


def test_training_with_exactly_four_steps_does_not_crash_the_schedule(tmp_path):
    """torch's OneCycleLR divides by zero for 4 total steps with a 25% warm-up (144 training faces: 2 full batches
    of 64 an epoch, 2 epochs)."""
    import facelab
    from facelab.training.config import TrainConfig

    s = facelab.train(TrainConfig(spec="synth:200", out=str(tmp_path / "r"), attrs=["Young"], size="32", epochs=2, batch=64), quiet=True)
    assert s.epochs_done == 2


def test_every_plug_in_kind_refuses_an_unknown_name_in_one_line_naming_the_choices():
    from facelab.data.detect import BY_NAME
    from facelab.data.sources import SOURCES
    from facelab.model_export import FORMATS
    from facelab.models.registry import ARCHS
    from facelab.probes.cam import METHODS
    from facelab.training.loggers import LOGGERS

    for registry in (ARCHS, TASKS, SOURCES, METHODS, BY_NAME, LOGGERS, FORMATS):
        assert len(registry) >= 2 and all(e.help for e in registry.entries()), registry.option
        with pytest.raises(FacelabError) as caught:
            registry.get("no-such-thing")
        message = str(caught.value)
        assert "\n" not in message and message.startswith(f"unknown {registry.option} 'no-such-thing'; use one of ")
        assert all(name in message for name in registry.names())
    assert LOGGERS.choices() == "csv, tensorboard or mlflow"


def test_an_options_help_names_every_plug_in_of_its_kind():
    """The command line may not load the networks to start, so --task, --method and --detector spell their choices
    in their help: each names every registered plug-in of its kind (a new one that is not named fails here)."""
    from facelab.cli_options import SHARED
    from facelab.cli_probes import METHOD_HELP
    from facelab.data.detect import BY_NAME
    from facelab.probes.cam import METHODS
    from facelab.training.config import cli_options

    helps = {
        "--task": (cli_options()["task"].help, TASKS),
        "--method": (METHOD_HELP, METHODS),
        "--detector": (SHARED["detector"].help, BY_NAME),
    }
    for option, (text, registry) in helps.items():
        missing = [name for name in registry.names() if re.search(rf"(^|[\s(,]){re.escape(name)}([\s),;.]|$)", text) is None]
        assert missing == [], f"{option}'s help does not name {missing}"
