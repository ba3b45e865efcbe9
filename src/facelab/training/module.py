"""The LightningModule every facelab training run uses."""

from __future__ import annotations

import lightning.pytorch as pl
import torch

from ..errors import FacelabError
from ..hardware import Runtime
from .batches import STD, augmented_input, invert_some, seeded, to_input
from .config import TrainConfig
from .group_balance import GroupLoss
from .robust import perturbed
from .run_folder import RunConfig
from .sections import OptimSettings
from .task_parts import TrainingStep
from .tasks import MetricSums

CHECK_EVERY = 50  # steps between looks at the loss on an accelerator (each look waits for the device)


class FaceModule(pl.LightningModule):
    """Trains ``model`` on ``task``; batches come from the cache as uint8 and are prepared here.

    ``cfg``: the run's settings, ``out`` its folder. ``config`` (the run's config.json: its settings and task
    description) is saved in every checkpoint (``save_hyperparameters``), so a checkpoint file reopens on its own
    (:meth:`facelab.run.Run.open`)."""

    def __init__(self, model: torch.nn.Module, task: TrainingStep, cfg: TrainConfig, rt: Runtime, config: RunConfig | None = None):
        super().__init__()
        self.save_hyperparameters({"facelab": config or {}})
        self.model, self.task, self.cfg, self.runtime = model, task, cfg, rt
        self.model = self.model.to(memory_format=rt.memory_format)
        self.epoch_metrics: dict[str, dict[str, float]] = {}
        self.mid_epoch = False  # set while a stopped run writes its mid-epoch checkpoint
        self.train_loader = None  # the training ResumableLoader, set by the engine
        self.sums = {split: MetricSums(task) for split in ("train", "valid")}
        self.group_loss: GroupLoss | None = None  # --balance reweight / groupdro
        self.train_groups: torch.Tensor | None = None

    def weigh_groups(self, mode: str, train_groups: torch.Tensor, n_groups: int) -> None:
        """Weigh the loss by the groups of the training items (``train_groups``: each item's group, in loader order)."""
        self.group_loss, self.train_groups = GroupLoss(mode, train_groups, n_groups), train_groups

    # --- accumulation that survives DDP: sums, reduced across ranks at epoch end -------------
    def finish_split(self, split: str) -> dict[str, float]:
        """Metrics of the epoch so far on ``split`` (reduced over ranks), and a fresh start."""
        values = self.sums[split].values.to(self.device)
        if self.trainer.world_size > 1:
            values = self.trainer.strategy.reduce(values, reduce_op="sum")
        out = self.sums[split].result(values.cpu())
        self.sums[split] = MetricSums(self.task)
        return out

    # --- mid-epoch checkpoints ------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """A checkpoint written mid-epoch (a stopped run) carries the epoch's partial training sums."""
        if self.mid_epoch:
            checkpoint["facelab_train_sums"] = self.sums["train"].values.cpu().clone()
        if self.group_loss is not None:  # GroupDRO's weights move every step: a resumed run goes on from them
            checkpoint["facelab_group_weights"] = self.group_loss.weights.clone()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "facelab_train_sums" in checkpoint:
            self.sums["train"].values = checkpoint["facelab_train_sums"].clone()
        if self.group_loss is not None and "facelab_group_weights" in checkpoint:
            self.group_loss.weights = checkpoint["facelab_group_weights"].clone()
        # Lightning saves the training loader's state but does not load it back when configure_optimizers asked for
        # estimated_stepping_batches (the loader is built before the loops are restored), so apply it here.
        states = checkpoint.get("loops", {}).get("fit_loop", {}).get("state_dict", {}).get("combined_loader")
        if states and self.train_loader is not None:
            self.train_loader.load_state_dict(states[0])

    # --- steps -------------------------------------------------------------------------
    def prepare(self, x8: torch.Tensor) -> torch.Tensor:
        return to_input(x8.to(self.device, non_blocking=True), self.cfg.data.channels, self.runtime.channels_last)

    def _augmented_input(self, x8: torch.Tensor, y: torch.Tensor, gen: torch.Generator):
        """The training input: the task's whole-batch augmentation applied to the bytes where it can be (three
        channels), else the prepared input handed to the task's own :meth:`~Task.augment`."""
        if not self.cfg.optim.augment:
            return self.prepare(x8), y
        settings = self.task.batch_augmentation(self.cfg.optim)
        if settings is not None and self.cfg.data.channels == 3:
            return augmented_input(x8.to(self.device, non_blocking=True), gen, channels_last=self.runtime.channels_last, **settings), y
        return self.task.augment(self.prepare(x8), y, gen, self.cfg.optim)

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x8, y, pos = batch
        parts = (self.cfg.seed, self.current_epoch, batch_idx, self.global_rank)
        self._seed_global_generator(hash(parts) % (2**62))
        gen = seeded(*parts)
        x, y = self._augmented_input(x8, y, gen)
        o = self.cfg.optim
        x = invert_some(x, o.inverted_fraction, gen)
        if o.robust:  # --robust EPS: train on the batch's worst case within the budget (in input units)
            eps = o.robust / STD  # pixel units -> the normalised input's units (linf per value, l2 per image)
            loss_of = lambda v: self.task.loss(self.model(v), y)  # noqa: E731
            x = perturbed(loss_of, x, eps, o.robust_norm, gen, o.robust_steps)
        logits = self.model(x)
        if self.group_loss is not None:
            main = self.group_loss(self.task.item_loss(logits, y), self.train_groups[pos.cpu()])
        else:
            main = self.task.loss(logits, y)
        loss = main + self.task.auxiliary_loss(self.model, y)
        self.sums["train"].add(loss, logits, y)
        self._stop_if_diverged(loss, batch_idx)
        return loss

    def _seed_global_generator(self, seed: int) -> None:
        """Seeds the generator of this step's device (dropout and anything else random). Not ``torch.manual_seed``: on a
        machine without CUDA it queues a lazy seed for CUDA, MTIA and XPU each time, with a formatted stack trace (three
        per step, each reading the source of every frame of Lightning's deep stack)."""
        torch.default_generator.manual_seed(seed)
        if self.device.type == "cuda":
            torch.cuda.manual_seed(seed)

    def _stop_if_diverged(self, loss: torch.Tensor, batch_idx: int) -> None:
        """A non-finite loss stops the run. Looking costs a host synchronisation, so on an accelerator it is looked at
        every CHECK_EVERY steps, through the epoch's running loss sum (non-finite from the first bad step on)."""
        if loss.device.type != "cpu" and batch_idx % CHECK_EVERY:
            return
        if not torch.isfinite(self.sums["train"].values[0]):
            when = "at" if loss.device.type == "cpu" else "by"  # every step is looked at on a CPU
            raise FacelabError(
                f"loss became {float(loss.detach())} {when} epoch {self.current_epoch}, step {batch_idx}; the last good "
                f"checkpoint is kept in {self.cfg.out}/checkpoints (try a smaller --lr)"
            )

    def validation_step(self, batch, batch_idx):
        x8, y, _ = batch
        logits = self.model(self.prepare(x8))
        self.sums["valid"].add(self.task.loss(logits, y), logits, y)

    def on_validation_epoch_end(self):
        if self.trainer.sanity_checking:
            self.sums["valid"] = MetricSums(self.task)
            return
        m = self.finish_split("valid")
        self.epoch_metrics["valid"] = m
        if "acc" in m:
            self.log("val_acc", m["acc"], prog_bar=True, sync_dist=False)
        self.log("val_loss", m["loss"], prog_bar=True, sync_dist=False)

    # --- optimisation ------------------------------------------------------------------------
    def configure_optimizers(self):
        c = self.cfg.optim
        opt = optimizer_for(self.model.parameters(), c)
        if c.schedule == "none":
            return opt
        total = int(self.trainer.estimated_stepping_batches)
        if c.schedule == "onecycle":
            # torch's OneCycleLR divides by zero when its warm-up ends at step 0, which 0.25 of exactly 4 steps does
            warmup = 0.5 if total == 4 else 0.25
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=c.lr, total_steps=max(total, 1), pct_start=warmup)
        else:
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total, 1))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def optimizer_for(params, c: OptimSettings) -> torch.optim.Optimizer:
    """The optimiser a run's settings name: SGD with Nesterov momentum, Adam or AdamW, each with
    its weight decay. ``facelab bench train``'s compute step takes the same, so the loop is held to the same work."""
    if c.opt == "sgd":
        return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, nesterov=c.momentum > 0, weight_decay=c.wd)
    if c.opt == "adam":
        return torch.optim.Adam(params, lr=c.lr, weight_decay=c.wd)
    return torch.optim.AdamW(params, lr=c.lr, weight_decay=c.wd)
