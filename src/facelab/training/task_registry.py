"""Tasks by name, for ``--task``: a task is a module with its Task subclass, plus its line here."""

from __future__ import annotations

from ..plugins import Registry
from .keypoint_task import KeypointTask
from .rotation_task import RotationTask
from .tasks import AttrTask, IdentityTask, Task

TASKS: Registry[type[Task]] = Registry("--task")
for task in (AttrTask, IdentityTask, KeypointTask, RotationTask):
    TASKS.add(task.name, task, task.about)


def task_class(name: str) -> type[Task]:
    return TASKS.get(name)


def task_for(cfg) -> Task:
    """The task a TrainConfig describes."""
    return task_class(cfg.task).from_config(cfg)


def restored_task(cfg, description: dict) -> Task:
    """A trained run's task, rebuilt from its TrainConfig and config.json's "data" block."""
    task = task_for(cfg)
    task.restore(description)
    return task
