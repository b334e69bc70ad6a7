"""The LightningModule that trains a probabilistic model: the objective, the optimizer, the steps.

The model itself (``vae_zoo.probabilistic_model.ProbabilisticModel``: encoder, latent family, prior, flow,
estimator, decoder, likelihood and the forward path) is a plain module held as ``self.model``; the objective
receives it, never this class. Validation reports the negative ELBO with exact posterior samples and its
terms, the objective's own bound, and (test) the importance-weighted bound ``test/nll_iw`` with
``iw_samples``, the active units ``test/active_units`` (``vae_zoo.active_units``), and the mutual information
``test/mutual_info`` and aggregate posterior's KL ``test/marginal_kl`` (``vae_zoo.mutual_information``), a
discriminator's total correlation of the held-out codes ``factor_tc`` (``discriminator=mlp``); bits per
dimension for 8-bit data. A checkpoint's ``state_dict`` is the model's. A conditional model's batches are
``(images, labels)``; every step computes given the labels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.distributions import Distribution
from torch.optim.lr_scheduler import LRScheduler

from vae_zoo.active_units import UnitSpread
from vae_zoo.callbacks.epoch_means import EpochMeans
from vae_zoo.callbacks.exact_resume import ExactResume
from vae_zoo.callbacks.logging_steps import is_logging_step
from vae_zoo.callbacks.nonfinite_guard import NonFiniteGuard
from vae_zoo.capabilities import FIXED_PARAMETERS
from vae_zoo.compilation import compile_in_place
from vae_zoo.components import build
from vae_zoo.config_groups import option_name
from vae_zoo.data.tensor_batches import images_and_labels
from vae_zoo.errors import ConfigError
from vae_zoo.mutual_information import AggregatePosterior, surgery_metrics
from vae_zoo.objectives.objective import Objective, ObjectiveOutput
from vae_zoo.optimizers import build_optimizer, check_optimizer, clips_mixed_precision
from vae_zoo.pairing import check_pairing
from vae_zoo.probabilistic_model import ProbabilisticModel
from vae_zoo.setting_types import fits

DEFAULT_OBJECTIVE = {"_target_": "vae_zoo.objectives.ELBO"}


class StepOutput(NamedTuple):
    """What a training step leaves for the callbacks that read it (guard, epoch means)."""

    loss: Tensor  # detached
    terms: dict[str, Tensor]
    images: int | Tensor  # a device-side count where the deferred non-finite guard weights the step


def evaluation_terms(
    model: ProbabilisticModel,
    objective: Objective,
    x: Tensor,
    stage: str,
    iw_samples: int,
    spread: UnitSpread,
    aggregate: AggregatePosterior,
) -> dict[str, Tensor]:
    """Per image: the negative ELBO with exact posterior samples (the closed-form KL where there is one) and
    its terms, the classifier's error (1 where ``argmax q(y|x)`` is not the label given; a model with one), the
    objective's own bound, the discriminator's logit ``l(z)`` at the sample (a model with one: its mean over
    held-out images, ``factor_tc``, estimates their codes' total correlation), and in ``test`` the IW bound with
    ``iw_samples`` (a model with a classifier: also with the label summed out), the units' locations under that
    posterior added to ``spread``, and the posterior with its sample and KL to ``aggregate`` (where it has its
    parameters as tensors: ``vae_zoo.mutual_information``)."""
    draws = []

    def exact_sample(q: Distribution) -> Tensor:
        draws.append((q, q.sample()))
        return draws[0][1]

    recon, kl = model.negative_elbo_terms(x, exact_sample)
    ((q, z),) = draws
    values = {"elbo": recon + kl, "recon": recon, "kl": kl}
    if model.classifier is not None:
        values["class_error"] = (model.class_log_probs(x).argmax(-1) != model.labels).float()
    if objective.bound_name:
        values[objective.bound_name] = objective.bound(model, x)
    if model.discriminator is not None:
        values["factor_tc"] = model.discriminator(z)
    if stage == "test":
        values["nll_iw"] = model.importance_weighted_nll(x, iw_samples)
        if model.classifier is not None:
            values["nll_iw_marginal"] = model.marginal_importance_weighted_nll(x, iw_samples)
        spread.add(model.unit_locations(q))
        if FIXED_PARAMETERS.met_by(q):
            aggregate.add(q, z, kl, model.models)
    return values


def with_bits_per_dim(metrics: dict[str, Any], model: ProbabilisticModel, stage: str) -> dict[str, Any]:
    """``metrics`` (``<stage>/elbo``, ``test/nll_iw``) with their bits per dimension where the pixels are levels."""
    if model.pixel_levels:
        metrics[f"{stage}/elbo_bpd"] = model.bits_per_dim(metrics[f"{stage}/elbo"])
        if stage == "test":
            metrics["test/bpd"] = model.bits_per_dim(metrics["test/nll_iw"])
    return metrics


class VAE(pl.LightningModule):
    """Trains ``ProbabilisticModel(encoder, decoder, latent, estimator, likelihood, prior, flow, input_shape,
    pixels)`` on ``objective`` with ``optimizer`` (and ``scheduler``).

    Components are stored as config dicts in the hyperparameters (not as modules), so
    ``load_from_checkpoint`` rebuilds the model from the checkpoint alone. ``input_shape`` and ``pixels``
    come from the data module.
    """

    def __init__(
        self,
        encoder: dict[str, Any],
        decoder: dict[str, Any],
        latent: dict[str, Any],
        estimator: dict[str, Any],
        likelihood: dict[str, Any],
        optimizer: dict[str, Any],
        objective: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
        prior: dict[str, Any] | None = None,
        flow: dict[str, Any] | None = None,
        input_shape: Sequence[int] = (1, 28, 28),
        pixels: str | None = None,
        iw_samples: int = 1000,
        iw_chunk: int = 100,
        compile: bool | str = False,
        compile_scope: str = "modules",
        nonfinite: str = "stop",
        nonfinite_check_every: int | None = None,
        monitor: str = "val/elbo",
        condition: dict[str, Any] | None = None,
        classes: int | None = None,
        classifier: dict[str, Any] | None = None,
        discriminator: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        check_optimizer(optimizer, scheduler)
        if not all(fits(n, int) and n >= 1 for n in (iw_samples, iw_chunk)):
            raise ConfigError(
                f"eval.iw_samples={iw_samples!r} and eval.iw_chunk={iw_chunk!r} must be integers >= 1"
            )
        self.model_callbacks = [
            EpochMeans(),
            ExactResume(),
            *([NonFiniteGuard(nonfinite, nonfinite_check_every)] if nonfinite != "off" else []),
        ]
        self.step_output: StepOutput | None = None
        self.unit_spread, self.aggregate_posterior = UnitSpread(), AggregatePosterior()
        self.model = ProbabilisticModel(
            encoder,
            decoder,
            latent,
            estimator,
            likelihood,
            prior,
            flow,
            input_shape,
            pixels,
            iw_chunk,
            condition,
            classes,
            classifier,
            discriminator,
        )
        self.objective = build(objective or DEFAULT_OBJECTIVE, Objective, "objective")
        self.objective.bind(self.model)
        if self.model.classifier is not None and not self.objective.infers_labels:
            raise ConfigError(
                f"{option_name('classifier', self.model.classifier)} is trained by objective=semi_supervised, and "
                f"{option_name('objective', self.objective)} would leave it untrained: add "
                "objective=semi_supervised, or classifier=none"
            )
        if self.model.discriminator is not None and not self.objective.trains_discriminator:
            raise ConfigError(
                f"{option_name('discriminator', self.model.discriminator)} is trained by objective=elbo, and "
                f"{option_name('objective', self.objective)} would leave it untrained: use objective=elbo "
                "(objective.factor_weight weighs its total correlation), or discriminator=none"
            )
        model = self.model
        check_pairing(
            model.latent, model.estimator, self.objective, model.probe_posterior(), model.posterior_name
        )
        self.compiled_loss = compile_in_place(self.model, self.objective, compile, compile_scope)
        # the model summary's FLOPs per image
        image = torch.zeros(1, *input_shape)
        self.example_input_array = image if condition is None else (image, torch.zeros(1, dtype=torch.long))

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """The model's negative ELBO per image (``ProbabilisticModel.forward``), given a conditional model's
        ``labels``; on ``example_input_array`` the model summary counts its FLOPs per image."""
        with self.model.given(labels):
            return self.model(x)

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The probabilistic model's (keys ``encoder.*``, ``latent.*``, ...): this module keeps no state of
        its own, and checkpoints read the same before and after the model moved below Lightning."""
        return self.model.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        return self.model.load_state_dict(state_dict, strict=strict, assign=assign)

    def setup(self, stage: str) -> None:
        """Before training, the objective learns the training set's size (``Objective.training_images``)."""
        if stage == "fit" and self.trainer.datamodule is not None:
            self.objective.training_images = self.trainer.datamodule.training_images

    # -- training ----------------------------------------------------------------------------------

    def training_loss(self, x: Tensor) -> ObjectiveOutput:
        """The objective on a training batch. With ``compile_scope=loss`` each batch size gets its own
        graph: with a symbolic batch size the Gamma's sampler leaves the graph (an epoch's last, smaller
        batch split it into 10 pieces and took the speed-up away)."""
        if self.compiled_loss:
            torch._dynamo.mark_static(x, 0)
        return self.objective(self.model, x)

    def training_step(self, batch: Tensor | tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """The objective's loss; its terms go to the loggers (``train/<name>``; with a schedule, the model's
        learning rate as ``train/lr``), the guard and the epoch means."""
        x, labels = images_and_labels(batch)
        with self.model.given(labels):
            loss, terms = self.training_loss(x)
        self.step_output = StepOutput(loss.detach(), terms, len(x))
        if is_logging_step(self.trainer):
            self.log("train/loss", loss.detach(), prog_bar=True)
            self.log_dict({f"train/{name}": value for name, value in terms.items()})
            if self.hparams.scheduler:  # the rate this step updates with
                self.log("train/lr", float(self.trainer.optimizers[0].param_groups[0]["lr"]))
        return loss

    def configure_callbacks(self) -> list[pl.Callback]:
        """The callbacks the model's own behaviour needs, whatever the Trainer's list: epoch means, exact
        resume and (unless ``model.nonfinite=off``) the non-finite guard."""
        attached = self._trainer.callbacks if self._trainer is not None else []
        return [callback for callback in self.model_callbacks if callback not in attached]

    def parameter_groups(self) -> list[dict]:
        """The model's parameters in one group, then the groups with their own settings (the estimator's, the
        discriminator's); while the prior trains alone, its parameters' groups only."""
        own = self.model.own_parameter_groups()
        owned = {id(p) for group in own for p in group["params"]}
        groups = [{"params": [p for p in self.parameters() if id(p) not in owned]}, *own]
        if not self.model.prior_alone:
            return groups
        trained = ({**group, "params": [p for p in group["params"] if p.requires_grad]} for group in groups)
        return [group for group in trained if group["params"]]

    def configure_optimizers(self):
        optimizer = build_optimizer(
            self.hparams.optimizer, self.parameter_groups(), self.device, clips_mixed_precision(self._trainer)
        )
        if not self.hparams.scheduler:
            return optimizer
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": self.build_scheduler(optimizer), "monitor": self.hparams.monitor},
        }

    def build_scheduler(self, optimizer: torch.optim.Optimizer) -> LRScheduler:
        """``model.scheduler`` on ``optimizer`` (a packed model's own optimizer too)."""
        return build(self.hparams.scheduler, LRScheduler, "model.scheduler")(optimizer=optimizer)

    # -- evaluation --------------------------------------------------------------------------------

    @property
    def validation_metrics(self) -> tuple[str, ...]:
        """The metrics validation logs: the negative ELBO, its terms, the classifier's error and the objective's
        own bound, and the discriminator's total correlation (each where the model has it)."""
        bound = (f"val/{self.objective.bound_name}",) if self.objective.bound_name else ()
        error = ("val/class_error",) if self.model.classifier is not None else ()
        factor = ("val/factor_tc",) if self.model.discriminator is not None else ()
        return ("val/elbo", "val/recon", "val/kl", *error, *bound, *factor)

    def _evaluate(self, batch: Tensor | tuple[Tensor, Tensor], stage: str) -> None:
        """``evaluation_terms`` averaged over the batch, with bits per dimension for 8-bit data."""
        x, labels = images_and_labels(batch)
        with self.model.given(labels):
            values = evaluation_terms(
                self.model,
                self.objective,
                x,
                stage,
                self.hparams.iw_samples,
                self.unit_spread,
                self.aggregate_posterior,
            )
        metrics = with_bits_per_dim(
            {f"{stage}/{name}": v.mean() for name, v in values.items()}, self.model, stage
        )
        self.log_dict(metrics, on_epoch=True, prog_bar=stage == "val", batch_size=len(x), sync_dist=True)

    def validation_step(self, batch: Tensor | tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Tensor | tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_test_epoch_start(self) -> None:
        self.unit_spread, self.aggregate_posterior = UnitSpread(), AggregatePosterior()

    def on_test_epoch_end(self) -> None:
        """``test/active_units``, ``test/mutual_info`` and ``test/marginal_kl`` over every process's test images
        (where there were any)."""
        if self.unit_spread.images:
            total = lambda t: self.trainer.strategy.reduce(t, reduce_op="sum")
            (active,) = self.unit_spread.active_units(total)
            self.log("test/active_units", float(active))
        gather = (lambda t: self.all_gather(t)) if self.trainer.world_size > 1 else (lambda t: t.unsqueeze(0))
        for metrics in surgery_metrics(self.aggregate_posterior, self.model.prior_of_label, gather):
            self.log_dict(metrics)
        self.aggregate_posterior = AggregatePosterior()
