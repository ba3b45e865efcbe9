"""Tasks by name, for ``--task``: a task is a module with its Task subclass, plus its line here."""
from __future__ import annotations

from ..errors import FacelabError
from .keypoint_task import KeypointTask
from .tasks import AttrTask, IdentityTask, Task


def make_task(task: str, attrs: list[str] | None, classes: int, min_images: int = 2, points: str = "all") -> Task:
    if task == "attr":
        if not attrs:
            raise FacelabError("--task attr needs --attrs, e.g. --attrs Male,Young")
        return AttrTask(attrs=attrs)
    if task == "identity":
        return IdentityTask(classes=classes, min_images=min_images)
    if task == "keypoints":
        return KeypointTask(points=points)
    raise FacelabError(f"unknown --task {task!r}; use attr, identity or keypoints")


def task_for(cfg) -> Task:
    """The task a TrainConfig describes."""
    return make_task(cfg.task, cfg.attrs, cfg.classes, cfg.min_images, cfg.points)
