"""The shared VAE LightningModule: ELBO training, exact-sample evaluation and the importance-weighted bound.

Per image, with ``z ~ q(z|x)``:
    negative ELBO  = -log p(x|z) + KL(q(z|x) || p(z))                       (``*/elbo``, ``train/loss``)
    IWAE bound     = -log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x),  z_i ~ q  (``test/nll_iw``, Burda et al.)
Both are reported in nats per image (summed over pixels, averaged over images) as positive numbers.
Sampling, log-probabilities and KL run in float32 with autocast off; encoder and decoder run under it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, NamedTuple

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from torch import Tensor
from torch.distributions import Distribution

from vae_zoo import rng_state
from vae_zoo.errors import ConfigError, NonFiniteLossError
from vae_zoo.latents.family import LatentFamily

NONFINITE_ACTIONS = ("stop", "skip", "off")


class ElboTerms(NamedTuple):
    """Per-image terms of the negative ELBO, with the posterior and the sample they came from."""

    recon: Tensor  # -log p(x|z)
    kl: Tensor  # KL(q(z|x) || p(z)), closed form or one-sample
    posterior: Distribution
    z: Tensor


class VAE(pl.LightningModule):
    """Encoder -> latent family -> estimator -> decoder -> likelihood, all built from plain config dicts.

    Subclasses fix ``latent_family``; ``latent`` holds that family's keyword arguments. Components are
    stored as config dicts in the hyperparameters (not as modules), so ``load_from_checkpoint`` rebuilds
    the model from the checkpoint alone.
    """

    latent_family: type[LatentFamily]

    def __init__(
        self,
        encoder: dict[str, Any],
        decoder: dict[str, Any],
        estimator: dict[str, Any],
        likelihood: dict[str, Any],
        optimizer: dict[str, Any],
        latent: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
        kl: str = "analytic",
        input_shape: Sequence[int] = (1, 28, 28),
        iw_samples: int = 1000,
        iw_chunk: int = 100,
        compile: bool = False,
        nonfinite: str = "stop",
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        if nonfinite not in NONFINITE_ACTIONS:
            raise ConfigError(f"model.nonfinite={nonfinite!r} is not one of {', '.join(NONFINITE_ACTIONS)}")
        if not optimizer.get("lr", 1.0) > 0:
            raise ConfigError(f"model.optimizer.lr={optimizer['lr']} must be > 0")
        if iw_samples < 1 or iw_chunk < 1:
            raise ConfigError(f"eval.iw_samples={iw_samples} and eval.iw_chunk={iw_chunk} must be >= 1")
        input_shape = tuple(input_shape)
        self.kl_mode = kl
        self.kl_weight = 1.0  # beta of the training loss; KLWarmup raises it from 0
        self.nonfinite = nonfinite
        self.skipped_batches = 0
        self._step_terms: tuple | None = None  # this step's (loss, [recon, KL] means, surrogate, images)
        self._resume_state: dict[str, Any] | None = None
        self.encoder = instantiate(encoder, input_shape=input_shape)
        self.latent = self.latent_family(in_features=self.encoder.out_features, **(latent or {}))
        if kl not in self.latent.kl_modes:
            raise ConfigError(
                f"model.kl={kl} is not available for {type(self).__name__}; "
                f"choose one of: {', '.join('model.kl=' + mode for mode in self.latent.kl_modes)}"
            )
        self.decoder = instantiate(decoder, in_features=self.latent.sample_features, output_shape=input_shape)
        if compile:  # in place: parameter names and checkpoints stay those of the plain modules
            self.encoder.compile()
            self.decoder.compile()
        self.likelihood = instantiate(likelihood)
        self.estimator = instantiate(estimator)
        if self.estimator.name not in self.latent.estimators:
            raise ConfigError(
                f"estimator={self.estimator.name} does not pair with {type(self).__name__}; "
                f"choose one of: {', '.join('estimator=' + name for name in self.latent.estimators)}"
            )

    def _float32(self) -> AbstractContextManager:
        """Autocast off (for sampling, log-probabilities and KL), where autocast is on at all."""
        if torch.is_autocast_enabled(self.device.type):
            return torch.autocast(self.device.type, enabled=False)
        return nullcontext()

    def negative_elbo_terms(self, x: Tensor, sample: Callable[[Distribution], Tensor]) -> ElboTerms:
        """Per-image ``-log p(x|z)`` and ``KL(q || p)`` with ``z = sample(q(z|x))``."""
        features = self.encoder(x)
        with self._float32():
            q = self.latent.posterior(features.float())
            z = sample(q)
            kl = self.latent.kl(q, z, self.kl_mode)
        logits = self.decoder(self.latent.decoder_input(z))
        with self._float32():
            recon = self.likelihood.nll(logits.float(), x)
        return ElboTerms(recon, kl, q, z)

    def training_step(self, x: Tensor, batch_idx: int) -> Tensor:
        """Minimises ``-log p(x|z) + beta * KL`` plus the estimator's surrogate, if it has one.

        The surrogate's cost is the part of the loss that depends on the sample: the reconstruction,
        and with ``kl: mc`` the one-sample KL too (a closed-form KL gets its exact gradient directly).
        """
        terms = self.negative_elbo_terms(x, self.estimator.sample)
        with self._float32():
            cost = terms.recon + self.kl_weight * terms.kl if self.kl_mode == "mc" else terms.recon
            surrogate = self.estimator.surrogate(terms.posterior, terms.z, cost)
        recon, kl = terms.recon.mean(), terms.kl.mean()
        loss = recon + kl if self.kl_weight == 1.0 else recon + self.kl_weight * kl
        if surrogate is not None:
            surrogate = surrogate.mean()
            loss = loss + surrogate
            surrogate = surrogate.detach()
        means = torch.stack([recon, kl]).detach()
        self._step_terms = (loss.detach(), means, surrogate, len(x))
        if self.is_logging_step():
            self.log("train/loss", means.sum(), prog_bar=True)
            self.log_dict({"train/recon": means[0], "train/kl": means[1]})
        return loss

    def on_fit_start(self) -> None:
        self._trainable = [p for p in self.parameters() if p.requires_grad]

    def on_before_optimizer_step(self, optimizer) -> None:
        """The non-finite guard, after the backward pass: a non-finite loss or gradient stops the run or
        (``model.nonfinite=skip``) leaves the parameters untouched this step.

        One reduction checks both: the loss plus the sum of every gradient is finite iff all of them are
        (barring a float32 overflow of the sum, which the exact check below rules out). Under 16-mixed
        the gradient scaler skips steps with non-finite gradients itself, so only the loss is checked.
        """
        if self.nonfinite == "off":
            return
        loss, means, surrogate, _ = self._step_terms
        grads = [p.grad for p in self._trainable if p.grad is not None]
        if self.trainer.precision == "16-mixed" or not grads:
            probe = loss
        else:
            probe = torch.stack([loss, *(grad.sum() for grad in grads)]).sum()
        if math.isfinite(probe.item()):
            return
        named = {"reconstruction": means[0], "KL": means[1], "surrogate": surrogate}
        bad = [name for name, value in named.items() if value is not None and not torch.isfinite(value)]
        if not bad and probe is not loss:
            if all(torch.isfinite(grad).all() for grad in grads):
                return  # finite gradients whose sum overflowed float32
            bad = ["gradient"]
        self._non_finite(bad, self.trainer.fit_loop.epoch_loop.batch_idx)
        self._step_terms = None  # not part of the epoch means
        for p in self._trainable:
            p.grad = None  # the optimizer skips parameters without a gradient

    def on_train_batch_end(self, outputs: Any, batch: Tensor, batch_idx: int) -> None:
        """Adds the step's terms (unless the batch was skipped) to the epoch's running sums."""
        if self._step_terms is not None:
            _, means, _, images = self._step_terms
            self._epoch_sums.add_(means, alpha=images)
            self._epoch_images += images

    def _non_finite(self, terms: list[str], batch_idx: int) -> None:
        """Stop with a message naming the step and the terms, or (``model.nonfinite=skip``) skip the batch."""
        if self.nonfinite == "skip":
            self.skipped_batches += 1
            self.log("train/skipped_batches", float(self.skipped_batches))
            return
        checkpoint = self.trainer.checkpoint_callback
        last_good = (checkpoint.last_model_path or checkpoint.best_model_path) if checkpoint else ""
        raise NonFiniteLossError(
            f"non-finite {' and '.join(terms)} at step {self.global_step} (epoch {self.current_epoch}, batch "
            f"{batch_idx}); the last good checkpoint is {last_good or 'not written yet'} -- lower "
            "model.optimizer.lr, set trainer.gradient_clip_val, or skip such batches with model.nonfinite=skip"
        )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Adds what an exact resume needs beyond Lightning's state: RNG states and the epoch's running sums."""
        checkpoint["vae_zoo"] = {
            "rng": rng_state.capture(),
            "epoch": self.current_epoch,
            "epoch_sums": self._epoch_sums.cpu() if hasattr(self, "_epoch_sums") else None,
            "epoch_images": getattr(self, "_epoch_images", 0),
            "skipped_batches": self.skipped_batches,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._resume_state = checkpoint.get("vae_zoo")
        if self._resume_state is not None:
            self.skipped_batches = self._resume_state["skipped_batches"]

    def on_train_batch_start(self, batch: Tensor, batch_idx: int) -> None:
        """A resumed checkpoint's RNG states apply just before its first training step, after anything
        (sanity validation) that ran in between and that an uninterrupted run did not. Resuming mid-epoch,
        Lightning does not start the epoch again, so the epoch's running sums come back here too."""
        state, self._resume_state = self._resume_state, None
        if state is None:
            return
        rng_state.restore(state["rng"])
        if state["epoch"] == self.current_epoch and state["epoch_sums"] is not None:
            self._epoch_sums, self._epoch_images = state["epoch_sums"].to(self.device), state["epoch_images"]

    def is_logging_step(self) -> bool:
        """True on the steps where Lightning writes step metrics to the loggers.

        ``self.log`` costs ~0.6 ms per key per call on the CPU (Lightning moves its result
        bookkeeping to the device each time), so training logs step values only when they are written
        (every ``log_every_n_steps``) and keeps its epoch means in ``_epoch_sums`` on the device.
        """
        every = self.trainer.log_every_n_steps
        return bool(self.trainer.fast_dev_run) or (every > 0 and (self.global_step + 1) % every == 0)

    def on_train_epoch_start(self) -> None:
        self._epoch_sums, self._epoch_images = torch.zeros(2, device=self.device), 0

    def on_train_epoch_end(self) -> None:
        recon, kl = self._epoch_sums / max(self._epoch_images, 1)
        loss = recon + kl
        self.log_dict(
            {"train/loss_epoch": loss, "train/recon_epoch": recon, "train/kl_epoch": kl}, sync_dist=True
        )

    def _evaluate(self, x: Tensor, stage: str) -> None:
        recon, kl, _, _ = self.negative_elbo_terms(x, lambda q: q.sample())
        metrics = {
            f"{stage}/elbo": (recon + kl).mean(),
            f"{stage}/recon": recon.mean(),
            f"{stage}/kl": kl.mean(),
        }
        if stage == "test":
            metrics["test/nll_iw"] = self.importance_weighted_nll(x).mean()
        self.log_dict(metrics, on_epoch=True, prog_bar=stage == "val", batch_size=len(x), sync_dist=True)

    def validation_step(self, x: Tensor, batch_idx: int) -> None:
        self._evaluate(x, "val")

    def test_step(self, x: Tensor, batch_idx: int) -> None:
        self._evaluate(x, "test")

    @torch.no_grad()
    def importance_weighted_nll(self, x: Tensor, k: int | None = None) -> Tensor:
        """``-log (1/k) sum_i w_i`` per image, ``log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x)``.

        Samples are drawn ``iw_chunk`` at a time and folded in with ``logaddexp``, so memory does not
        grow with ``k``; with ``k = 1`` this is a one-sample negative ELBO estimate.
        """
        k = k or self.hparams.iw_samples
        features = self.encoder(x)
        with self._float32():
            q = self.latent.posterior(features.float())
            prior = self.latent.prior()
        log_sum = None
        for start in range(0, k, self.hparams.iw_chunk):
            with self._float32():
                z = q.sample((min(self.hparams.iw_chunk, k - start),))
            logits = self.decoder(self.latent.decoder_input(z))
            with self._float32():
                log_w = prior.log_prob(z) - q.log_prob(z) - self.likelihood.nll(logits.float(), x)
                chunk_sum = torch.logsumexp(log_w, dim=0)
                log_sum = chunk_sum if log_sum is None else torch.logaddexp(log_sum, chunk_sum)
        return math.log(k) - log_sum

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """``E[x | z = E_q[z]]``: pixel means decoded from the posterior mean."""
        q = self.latent.posterior(self.encoder(x).float())
        return self.likelihood.mean(self.decoder(self.latent.decoder_input(q.mean)).float())

    @torch.no_grad()
    def generate(self, n: int) -> Tensor:
        """Pixel means decoded from ``n`` prior samples."""
        z = self.latent.prior().sample((n,))
        return self.likelihood.mean(self.decoder(self.latent.decoder_input(z)).float())

    def configure_optimizers(self):
        optimizer = instantiate(self.hparams.optimizer)(params=self.parameters())
        if not self.hparams.scheduler:
            return optimizer
        scheduler = instantiate(self.hparams.scheduler)(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val/elbo"}}
