"""The LightningModule that trains N packed models: one forward and backward pass, N optimizers' steps.

The loss is the sum of the models' own batch means, so model ``n``'s gradient is its unpacked run's. Each
model keeps its own optimizer (the configured one, on views of its slice of the stacked weights: its state,
learning rate and step count are an unpacked run's; the N stepped by one call where they allow it,
``joint_step``), its own learning-rate schedule (``packed_schedules``), its gradients clipped by its own norm,
and its own non-finite guard: a bad step changes none of its parameters or optimizer state, and nothing of the
others.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from vae_zoo.active_units import UnitSpread
from vae_zoo.callbacks.exact_resume import ExactResume
from vae_zoo.callbacks.nonfinite_guard import nonfinite_message, nonfinite_parts
from vae_zoo.data.tensor_batches import images_and_labels
from vae_zoo.models.vae import VAE, evaluation_terms, with_bits_per_dim
from vae_zoo.mutual_information import AggregatePosterior, surgery_metrics
from vae_zoo.optimizers import build_optimizer, clips_mixed_precision
from vae_zoo.packed_batch import per_image_copies
from vae_zoo.packing.joint_step import joint_optimizer, merged_groups
from vae_zoo.packing.pack import pack
from vae_zoo.packing.packed_schedules import PackedSchedules


@dataclass
class Stopped:
    """Where a model of a pack stopped early: its run's epoch count and step, and its weights then (as its
    checkpoints hold them: with weight averaging, the average)."""

    epochs: int
    global_step: int
    weights: dict[str, Tensor]


class PackedOptimizer(torch.optim.Optimizer):
    """N optimizers, model ``n``'s over views of slice ``n`` of the packed parameters; ``step`` steps those of
    the models in ``active`` (set by the guard each step), each after its gradients' views are taken: by one
    call where their class allows it (``joint_step``), else one by one."""

    def __init__(
        self, params: list[nn.Parameter], build: Callable[[int, list[Tensor]], torch.optim.Optimizer]
    ):
        super().__init__(params, {})
        self.packed = params
        models = params[0].shape[0]
        # leaf views of the stacked storage, which the optimizers update in place; of the detached parameter, so
        # that autograd does not track them as views of it (torch >= 2.15 refuses a gradient set on such a view
        # once an optimizer has changed its storage)
        self.views = [[p.detach()[n].requires_grad_() for p in params] for n in range(models)]
        self.optimizers = [build(n, views) for n, views in enumerate(self.views)]
        self.joint = joint_optimizer(self.optimizers)
        self.active = [True] * models

    def split_gradients(self) -> None:
        """Hand each model's optimizer its slice of the gradients (views: clipping them clips the stack)."""
        for n, views in enumerate(self.views):
            for view, p in zip(views, self.packed):
                view.grad = None if p.grad is None else p.grad[n]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.packed:
            p.grad = None
        for views in self.views:
            for view in views:
                view.grad = None

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        stepping = [optimizer for optimizer, active in zip(self.optimizers, self.active) if active]
        if self.joint is None:
            for optimizer in stepping:
                optimizer.step()
        elif stepping:
            self.joint.param_groups = merged_groups(stepping)
            self.joint.step()
            for optimizer in stepping:  # stepped: what a scheduler's wrapper of its step records
                optimizer._opt_called = True
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {"models": [optimizer.state_dict() for optimizer in self.optimizers]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for optimizer, own in zip(self.optimizers, state_dict["models"], strict=True):
            optimizer.load_state_dict(own)


class PackedVAE(pl.LightningModule):
    """``runs``: the N unpacked ``VAE``s of one architecture, each built with its seed (their initial weights),
    trained as one packed ``ProbabilisticModel`` (``self.model``) on the objective they share.

    After each step ``losses`` holds the N losses; after each validation or test epoch ``metrics[stage]`` the
    N models' epoch means; ``failures`` maps a model stopped by its non-finite guard to its one line,
    ``stopped`` a model its job's early stopping stopped to where (``PerModelEarlyStopping``)."""

    def __init__(self, runs: Sequence[VAE]) -> None:
        super().__init__()
        self.runs = tuple(runs)  # a tuple: their modules are not this one's (the packed copy is)
        self.model = pack([run.model for run in runs])
        self.objective = copy.deepcopy(runs[0].objective)  # the pack's: its settings become per model
        self.nonfinite = runs[0].hparams.nonfinite
        self.losses: Tensor | None = None
        self.terms: dict[str, Tensor] = {}
        self.failures: dict[int, str] = {}
        self.stopped: dict[int, Stopped] = {}
        self.skipped = [0] * len(runs)
        self.last_good = [""] * len(runs)  # each model's last checkpoint, for its guard's line
        self.metrics: dict[str, list[dict[str, float]]] = {}
        self._sums: dict[str, Tensor] = {}
        self._images = 0
        self._spread, self._aggregate = UnitSpread(), AggregatePosterior()

    def configure_callbacks(self) -> list[pl.Callback]:
        """Exact resume: the random-number state travels in the checkpoints (the pack's one stream)."""
        return [ExactResume()]

    @property
    def models(self) -> int:
        return self.model.models

    def setup(self, stage: str) -> None:
        """Before training, the objective learns the training set's size (``Objective.training_images``)."""
        if stage == "fit" and self.trainer.datamodule is not None:
            self.objective.training_images = self.trainer.datamodule.training_images

    # -- training ----------------------------------------------------------------------------------

    def training_step(self, batch: Tensor | tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, labels = images_and_labels(batch)
        with per_image_copies(self.model, len(x) // self.models), self.model.given(labels):
            loss, terms = self.objective(self.model, x)  # one value per model (a scalar for a pack of one)
        self.losses = loss.detach().reshape(-1)
        self.terms = {name: value.reshape(-1) for name, value in terms.items()}
        return loss.sum()

    def configure_optimizers(self) -> PackedOptimizer | dict[str, Any]:
        packed = dict(self.model.named_parameters())

        def build(n: int, views: list[Tensor]) -> torch.optim.Optimizer:
            run = self.runs[n]
            view_of = {name: view for name, view in zip(packed, views)}
            name_of = {id(p): name for name, p in run.model.named_parameters()}
            groups = [
                {**group, "params": [view_of[name_of[id(p)]] for p in group["params"]]}
                for group in run.parameter_groups()
            ]
            # each model's optimizer as its unpacked run builds it (the implementation included)
            return build_optimizer(
                run.hparams.optimizer, groups, self.device, clips_mixed_precision(self._trainer)
            )

        optimizer = PackedOptimizer(list(packed.values()), build)
        if not self.runs[0].hparams.scheduler:
            return optimizer
        schedules = [run.build_scheduler(own) for run, own in zip(self.runs, optimizer.optimizers)]
        # by epoch, as an unpacked run's; Lightning sees no plateau schedule (``lr_scheduler_step``)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": PackedSchedules(schedules, optimizer), "interval": "epoch"},
        }

    def lr_scheduler_step(self, scheduler: PackedSchedules, metric: Any) -> None:
        """Lightning's step of a schedule by epoch, after the epoch's last training batch; a plateau schedule
        steps at the epoch's end instead (``on_train_epoch_end``)."""
        if not scheduler.on_metric:
            scheduler.step()

    def on_train_epoch_end(self) -> None:
        """Each model's plateau schedule on its own latest validation value of its monitored metric, where and
        when Lightning steps an unpacked run's: after a whole epoch, not on the epoch a resume restarts in."""
        schedules = self.lr_schedulers()
        loop = self.trainer.fit_loop
        if not schedules or not schedules.on_metric:
            return
        if loop.restarting or not loop.epoch_loop._num_ready_batches_reached():
            return
        # validated every epoch (``check_optimized_metric``)
        monitors = [run.hparams.monitor for run in self.runs]
        schedules.step([metrics[m] for metrics, m in zip(self.metrics["val"], monitors)])

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Each model's guard: a non-finite loss, term or gradient skips its step (``model.nonfinite=skip``)
        or stops it for good, recording its one line (``stop``); the other models step as usual."""
        optimizer.split_gradients()
        grads = [p.grad for p in optimizer.packed if p.grad is not None]
        per_model = torch.stack(
            [self.losses, *self.terms.values(), *(g.reshape(len(g), -1).sum(1) for g in grads)]
        )
        finite = torch.isfinite(per_model.sum(0)).tolist()
        for n in range(self.models):
            # a failed sum of finite values (a float32 overflow) is told apart by the exact check
            good = finite[n] or not self._bad(n, grads)
            optimizer.active[n] = not self.done(n) and (good or self.nonfinite == "off")
            if optimizer.active[n] or self.done(n):
                continue
            if self.nonfinite == "skip":
                self.skipped[n] += 1
                continue
            where = f"epoch {self.trainer.current_epoch}, batch {self.trainer.fit_loop.epoch_loop.batch_idx}"
            self.failures[n] = nonfinite_message(
                self.trainer.global_step, self._bad(n, grads), where, self.last_good[n]
            )
            if all(self.done(m) for m in range(self.models)):
                self.trainer.should_stop = True

    def done(self, n: int) -> bool:
        """Whether model ``n`` trains no more: its guard failed it or its early stopping stopped it."""
        return n in self.failures or n in self.stopped

    def _bad(self, n: int, grads: list[Tensor]) -> list[str]:
        """Model ``n``'s non-finite parts (``nonfinite_parts`` of its slice)."""
        terms = {name: value[n] for name, value in self.terms.items()}
        return nonfinite_parts(self.losses[n], terms, [g[n] for g in grads])

    def configure_gradient_clipping(
        self, optimizer: torch.optim.Optimizer, gradient_clip_val=None, gradient_clip_algorithm=None
    ) -> None:
        """``trainer.gradient_clip_val`` applied to each model by its own gradient norm (or values), its
        parameters taken in its optimizer's order as Lightning takes an unpacked run's (the norm's sum order)."""
        if not gradient_clip_val:
            return
        for own, active in zip(optimizer.optimizers, optimizer.active):
            if not active:
                continue
            views = [p for group in own.param_groups for p in group["params"]]
            if gradient_clip_algorithm == "value":
                torch.nn.utils.clip_grad_value_(views, gradient_clip_val)
            else:
                torch.nn.utils.clip_grad_norm_(views, gradient_clip_val)

    # -- evaluation --------------------------------------------------------------------------------

    def _evaluate(self, batch: Tensor | tuple[Tensor, Tensor], stage: str) -> None:
        """Each model's negative ELBO and terms, its objective's bound and (test) IW bound, summed over the
        epoch's images, and (test) its units' spread (``VAE._evaluate``'s metrics, per model)."""
        x, labels = images_and_labels(batch)
        images = len(x) // self.models
        with per_image_copies(self.model, images), self.model.given(labels):
            iw_samples = self.runs[0].hparams.iw_samples
            values = evaluation_terms(
                self.model, self.objective, x, stage, iw_samples, self._spread, self._aggregate
            )
        for name, value in values.items():
            total = self.model.batch_mean(value).reshape(-1).double() * images
            self._sums[name] = self._sums[name] + total if name in self._sums else total
        self._images += images

    def _epoch_means(self, stage: str) -> None:
        means = {name: (total / self._images).tolist() for name, total in self._sums.items()}
        active = self._spread.active_units() if stage == "test" and self._spread.images else None
        surgery = surgery_metrics(self._aggregate, self.model.prior_of_label) if stage == "test" else []
        self.metrics[stage] = []
        for n in range(self.models):
            metrics = {f"{stage}/{name}": values[n] for name, values in means.items()}
            if active is not None:
                metrics["test/active_units"] = float(active[n])
            metrics.update(surgery[n] if surgery else {})
            self.metrics[stage].append(with_bits_per_dim(metrics, self.model, stage))
        self._sums, self._images, self._spread, self._aggregate = {}, 0, UnitSpread(), AggregatePosterior()

    def validation_step(self, batch: Tensor | tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Tensor | tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_validation_epoch_end(self) -> None:
        self._epoch_means("val")
        if self.trainer.sanity_checking:  # as Lightning drops an unpacked run's (no schedule steps on them)
            del self.metrics["val"]

    def on_test_epoch_end(self) -> None:
        self._epoch_means("test")
