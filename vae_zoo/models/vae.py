"""The shared VAE LightningModule: assembly from component configs, the training step, evaluation.

Per image, with ``z ~ q(z|x)``:
    negative ELBO  = -log p(x|z) + KL(q(z|x) || p(z))                       (``*/elbo``)
    IW bound       = -log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x),  z_i ~ q  (``test/nll_iw``, Burda et al.)
Both are reported in nats per image (summed over pixels, averaged over images) as positive numbers.
The training loss is the objective's (``vae_zoo.objectives``). Sampling, log-probabilities and KL run in
float32 with autocast off; encoder and decoder run under it. Every path (training, evaluation, the IW
bound, reconstructions, samples) goes through ``posterior``, ``sample``/``q.sample`` and ``nll``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, NamedTuple

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torch.distributions import Distribution
from torch.optim.lr_scheduler import LRScheduler

from vae_zoo.callbacks.epoch_means import EpochMeans
from vae_zoo.callbacks.exact_resume import ExactResume
from vae_zoo.callbacks.logging_steps import is_logging_step
from vae_zoo.callbacks.nonfinite_guard import NonFiniteGuard
from vae_zoo.components import build, build_with_sizes
from vae_zoo.config_groups import option_name
from vae_zoo.errors import ConfigError
from vae_zoo.estimators.estimator import Cost, Estimator
from vae_zoo.flows.flow import Flow
from vae_zoo.flows.posterior import FlowPosterior
from vae_zoo.latents.family import LatentFamily
from vae_zoo.likelihoods.likelihood import Likelihood
from vae_zoo.models.pairing import check_pairing, family_name
from vae_zoo.objectives.objective import Objective, ObjectiveOutput
from vae_zoo.optimizers import build_optimizer
from vae_zoo.priors.prior import Prior

DEFAULT_OBJECTIVE = {"_target_": "vae_zoo.objectives.ELBO"}
DEFAULT_PRIOR = {"_target_": "vae_zoo.priors.standard.StandardPrior"}


class ElboTerms(NamedTuple):
    """Per-image terms of the negative ELBO, with the posterior and the sample they came from."""

    recon: Tensor  # -log p(x|z)
    kl: Tensor  # KL(q(z|x) || p(z)), closed form
    posterior: Distribution
    z: Tensor


class StepOutput(NamedTuple):
    """What a training step leaves for the callbacks that read it (guard, epoch means)."""

    loss: Tensor  # detached
    terms: dict[str, Tensor]
    images: int | Tensor  # a device-side count where the deferred non-finite guard weights the step


#: torch.compile modes for ``model.compile`` (None: ``true``); reduce-overhead records CUDA graphs on a GPU
COMPILE_MODES = (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
#: what ``model.compile`` compiles: encoder and decoder, or the whole training loss (objective, forward and
#: backward, through every component) as one graph
COMPILE_SCOPES = ("modules", "loss")

#: the most decoder-output elements one chunk of the IW bound holds (2^26 floats: 256 MB); on the CPU 2^21
#: (8 MB), which keeps a chunk's activations in cache: 1.6 times the images/s of 2^26 at k = 1000
IW_CHUNK_ELEMENTS = {"cpu": 2**21, "other": 2**26}


def full_precision(tensor: Tensor) -> Tensor:
    """``tensor`` in float32 if autocast made it half or bfloat16; float32 and float64 pass unchanged."""
    return tensor if tensor.dtype in (torch.float32, torch.float64) else tensor.float()


class VAE(pl.LightningModule):
    """Encoder -> latent family -> estimator -> decoder -> likelihood, trained on an objective; every part
    built from its config dict (``_target_`` plus settings).

    Components are stored as config dicts in the hyperparameters (not as modules), so
    ``load_from_checkpoint`` rebuilds the model from the checkpoint alone. ``input_shape`` and
    ``pixels`` come from the data module: the decoder is built for the likelihood's ``param_shape``, and
    a likelihood that is no density of the data's pixels is refused (``pixels=None`` skips that check).
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
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        if not optimizer.get("lr", 1.0) > 0:
            raise ConfigError(f"model.optimizer.lr={optimizer['lr']} must be > 0")
        if iw_samples < 1 or iw_chunk < 1:
            raise ConfigError(f"eval.iw_samples={iw_samples} and eval.iw_chunk={iw_chunk} must be >= 1")
        input_shape = tuple(input_shape)
        self.model_callbacks = [
            EpochMeans(),
            ExactResume(),
            *([NonFiniteGuard(nonfinite, nonfinite_check_every)] if nonfinite != "off" else []),
        ]
        self.step_output: StepOutput | None = None
        self.encoder = build(encoder, nn.Module, "model.encoder", input_shape=input_shape)
        self.latent = build(latent, LatentFamily, "model.latent", in_features=self.encoder.out_features)
        self.likelihood = build(likelihood, Likelihood, "model.likelihood")
        if pixels is not None:
            self.likelihood.check_data(pixels)
        self.decoder = build(
            decoder,
            nn.Module,
            "model.decoder",
            in_features=self.latent.sample_features,
            output_shape=self.likelihood.param_shape(input_shape),
        )
        # a flattened sample's width (the decoder may read less or more: z1 of two layers, an angle's cos and sin)
        latent_features = math.prod(self.latent.probe_posterior().event_shape)
        sizes = {"input_shape": input_shape, "latent_features": latent_features}
        self.estimator = build_with_sizes(estimator, Estimator, "model.estimator", sizes)
        self.flow = (
            build(
                flow,
                Flow,
                "model.flow",
                latent_features=latent_features,
                in_features=self.encoder.out_features,
            )
            if flow
            else None
        )
        self.prior = build_with_sizes(prior or DEFAULT_PRIOR, Prior, "model.prior", sizes)
        self.check_support(self.prior, "prior")
        if self.flow is not None:
            self.check_support(self.flow, "flow")
        self.closed_form_kl = self.prior.closed_form_kl and self.latent.closed_form_kl and self.flow is None
        self.objective = build(objective or DEFAULT_OBJECTIVE, Objective, "objective")
        self.objective.bind(self.kl_origin)
        posterior = option_name("latent", self.latent)
        if self.flow is not None:
            posterior += f" through {option_name('flow', self.flow)}"
        check_pairing(self.latent, self.estimator, self.objective, self.probe_posterior(), posterior)
        if compile:  # in place: parameter names and checkpoints stay those of the plain modules
            mode = None if compile is True else compile
            if mode not in COMPILE_MODES:
                raise ConfigError(
                    f"model.compile={compile} is not one of true, false, {', '.join(COMPILE_MODES[1:])}"
                )
            if compile_scope not in COMPILE_SCOPES:
                raise ConfigError(
                    f"model.compile_scope={compile_scope} is not one of {', '.join(COMPILE_SCOPES)}"
                )
            for module in (self.objective,) if compile_scope == "loss" else (self.encoder, self.decoder):
                module.compile(mode=mode)
        self.compiled_loss = bool(compile) and compile_scope == "loss"
        self.example_input_array = torch.zeros(1, *input_shape)  # the model summary's FLOPs per image

    # -- the shared forward path -------------------------------------------------------------------

    def float32(self) -> AbstractContextManager:
        """Autocast off (for sampling, log-probabilities and KL), where autocast is on at all."""
        if torch.is_autocast_enabled(self.device.type):
            return torch.autocast(self.device.type, enabled=False)
        return nullcontext()

    def posterior(self, x: Tensor, flow: bool = True) -> Distribution:
        """``q(z|x)``: the encoder under autocast, the distribution in float32, through the flow if there is
        one (``flow=False``: the base posterior)."""
        features = full_precision(self.encoder(x))
        with self.float32():
            q = self.latent.posterior(features)
            return FlowPosterior(q, self.flow.transforms(features)) if flow and self.flow is not None else q

    def probe_posterior(self) -> Distribution:
        """The posterior for one all-zero feature vector, through any flow: what pairings are checked on."""
        with torch.no_grad():
            features = torch.zeros(1, self.latent.in_features)
            q = self.latent.posterior(features)
            return FlowPosterior(q, self.flow.transforms(features)) if self.flow is not None else q

    def check_support(self, component: nn.Module, group: str) -> None:
        """Stop with one line when a prior or flow needs of the posterior what the latent family lacks."""
        q = self.latent.probe_posterior()
        if not component.requires.met_by(q):
            raise ConfigError(
                f"{option_name(group, component)} needs {component.requires.needs}, which "
                f"{option_name('latent', self.latent)}'s {family_name(q)} posteriors lack -- choose another "
                f"{group}= or latent="
            )

    @property
    def kl_origin(self) -> str:
        """How the KL is computed: ``closed form``, or ``one-sample estimate`` (at the objective's sample in
        training, at the exact posterior sample in evaluation) where the prior, the family or a flow has
        none."""
        return "closed form" if self.closed_form_kl else "one-sample estimate"

    def prior_distribution(self) -> Distribution:
        """``p(z)``, the prior component's, in float32."""
        with self.float32():
            return self.prior.distribution(self)

    def sample(self, q: Distribution, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        """The estimator's training sample(s) of ``q``, in float32."""
        with self.float32():
            return self.estimator.sample(q, sample_shape)

    def likelihood_params(self, z: Tensor) -> Tensor:
        """The decoder's output for samples ``z`` (any leading sample dims), in float32."""
        return full_precision(self.decoder(self.latent.decoder_input(z)))

    def nll(self, x: Tensor, z: Tensor) -> Tensor:
        """``-log p(x|z)`` per sample and image."""
        params = self.likelihood_params(z)
        with self.float32():
            return self.likelihood.nll(params, x)

    def kl(self, q: Distribution) -> Tensor:
        """The closed-form ``KL(q || p)`` per image, in float32 (only where ``closed_form_kl``)."""
        with self.float32():
            return self.latent.kl(q)

    def kl_estimate(self, q: Distribution, z: Tensor, p: Distribution | None = None) -> Tensor:
        """``log q(z) - log p(z)`` per sample and image, in float32 (``p``: the prior, if already built)."""
        with self.float32():
            p = p if p is not None else self.prior_distribution()
            return q.log_prob(z) - p.log_prob(z)

    def log_weights(self, x: Tensor, q: Distribution, z: Tensor, p: Distribution | None = None) -> Tensor:
        """``log w = log p(x|z) + log p(z) - log q(z|x)`` per sample and image."""
        nll = self.nll(x, z)
        return -nll - self.kl_estimate(q, z, p)

    def surrogate(self, q: Distribution, z: Tensor, cost: Cost) -> Tensor | None:
        """The estimator's surrogate term for ``cost`` (None for pathwise estimators), in float32."""
        with self.float32():
            return self.estimator.surrogate(q, z, cost)

    def negative_elbo_terms(self, x: Tensor, sample: Callable[[Distribution], Tensor]) -> ElboTerms:
        """Per-image ``-log p(x|z)`` and ``KL(q || p)`` with ``z = sample(q(z|x))``: the closed form where
        there is one, else ``log q(z) - log p(z)`` at that sample (``kl_origin``)."""
        q = self.posterior(x)
        with self.float32():
            z = sample(q)
        kl = self.kl(q) if self.closed_form_kl else self.kl_estimate(q, z)
        return ElboTerms(self.nll(x, z), kl, q, z)

    def forward(self, x: Tensor) -> Tensor:
        """The negative ELBO per image, with an exact posterior sample and the closed-form KL (what
        validation reports); on ``example_input_array`` the model summary counts its FLOPs per image. The
        sample is drawn inside ``fork_rng``, so a call leaves the random streams of training unchanged."""
        with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
            recon, kl, _, _ = self.negative_elbo_terms(x, lambda q: q.sample())
        return recon + kl

    # -- training ----------------------------------------------------------------------------------

    def training_loss(self, x: Tensor) -> ObjectiveOutput:
        """The objective on a training batch. With ``compile_scope=loss`` each batch size gets its own
        graph: with a symbolic batch size the Gamma's sampler leaves the graph (an epoch's last, smaller
        batch split it into 10 pieces and took the speed-up away)."""
        if self.compiled_loss:
            torch._dynamo.mark_static(x, 0)
        return self.objective(self, x)

    def training_step(self, x: Tensor, batch_idx: int) -> Tensor:
        """The objective's loss; its terms go to the loggers (``train/<name>``), the guard and the epoch means."""
        loss, terms = self.training_loss(x)
        self.step_output = StepOutput(loss.detach(), terms, len(x))
        if is_logging_step(self.trainer):
            self.log("train/loss", loss.detach(), prog_bar=True)
            self.log_dict({f"train/{name}": value for name, value in terms.items()})
        return loss

    def configure_callbacks(self) -> list[pl.Callback]:
        """The callbacks the model's own behaviour needs, whatever the Trainer's list: epoch means, exact
        resume and (unless ``model.nonfinite=off``) the non-finite guard."""
        attached = self._trainer.callbacks if self._trainer is not None else []
        return [callback for callback in self.model_callbacks if callback not in attached]

    def parameter_groups(self) -> list[dict]:
        """The model's parameters in one group, then the estimator's own groups (their own settings)."""
        own = self.estimator.param_groups()
        owned = {id(p) for group in own for p in group["params"]}
        return [{"params": [p for p in self.parameters() if id(p) not in owned]}, *own]

    def configure_optimizers(self):
        optimizer = build_optimizer(self.hparams.optimizer, self.parameter_groups(), self.device)
        if not self.hparams.scheduler:
            return optimizer
        scheduler = build(self.hparams.scheduler, LRScheduler, "model.scheduler")(optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": self.hparams.monitor},
        }

    # -- evaluation --------------------------------------------------------------------------------

    @property
    def validation_metrics(self) -> tuple[str, ...]:
        """The metrics validation logs: the negative ELBO, its terms and the objective's own bound."""
        bound = (f"val/{self.objective.bound_name}",) if self.objective.bound_name else ()
        return ("val/elbo", "val/recon", "val/kl", *bound)

    def _evaluate(self, x: Tensor, stage: str) -> None:
        """The negative ELBO with exact posterior samples and the closed-form KL, the objective's bound,
        and (test) the IW bound with ``iw_samples``."""
        recon, kl, _, _ = self.negative_elbo_terms(x, lambda q: q.sample())
        metrics = {
            f"{stage}/elbo": (recon + kl).mean(),
            f"{stage}/recon": recon.mean(),
            f"{stage}/kl": kl.mean(),
        }
        if self.objective.bound_name:
            metrics[f"{stage}/{self.objective.bound_name}"] = self.objective.bound(self, x).mean()
        if stage == "test":
            metrics["test/nll_iw"] = self.importance_weighted_nll(x).mean()
        if self.pixel_levels:
            metrics[f"{stage}/elbo_bpd"] = self.bits_per_dim(metrics[f"{stage}/elbo"])
            if stage == "test":
                metrics["test/bpd"] = self.bits_per_dim(metrics["test/nll_iw"])
        self.log_dict(metrics, on_epoch=True, prog_bar=stage == "val", batch_size=len(x), sync_dist=True)

    @property
    def pixel_levels(self) -> bool:
        """Whether the likelihood is a distribution of the data's 8-bit levels (a pmf of them, or a density of
        their dequantization), so that its bounds convert to bits per dimension."""
        pixels = self.hparams.pixels
        return pixels in ("8bit", "dequantized") and pixels in self.likelihood.fits

    def bits_per_dim(self, nats: Tensor) -> Tensor:
        """Nats per image to bits per dimension, ``(nats + D ln 256 [dequantized]) / (D ln 2)``: a density
        on ``(k + u) / 256`` pays ``ln 256`` per dimension for the bin width 1/256 (Theis et al. 2016)."""
        dims = math.prod(self.hparams.input_shape)
        offset = dims * math.log(256) if self.hparams.pixels == "dequantized" else 0.0
        return (nats + offset) / (dims * math.log(2))

    def validation_step(self, x: Tensor, batch_idx: int) -> None:
        self._evaluate(x, "val")

    def test_step(self, x: Tensor, batch_idx: int) -> None:
        self._evaluate(x, "test")

    @torch.no_grad()
    def importance_weighted_nll(self, x: Tensor, k: int | None = None) -> Tensor:
        """``-log (1/k) sum_i w_i`` per image, ``log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x)``.

        Exact samples are drawn ``iw_chunk_size(x)`` at a time and folded in with ``logaddexp``, so memory
        does not grow with ``k``; with ``k = 1`` this is a one-sample negative ELBO estimate.
        """
        k = k or self.hparams.iw_samples
        q, p = self.posterior(x), self.prior_distribution()
        log_sum = None
        chunk = self.iw_chunk_size(x)
        for start in range(0, k, chunk):
            with self.float32():
                z = q.sample((min(chunk, k - start),))
            chunk_sum = torch.logsumexp(self.log_weights(x, q, z, p), dim=0)
            log_sum = chunk_sum if log_sum is None else torch.logaddexp(log_sum, chunk_sum)
        return math.log(k) - log_sum

    def iw_chunk_size(self, x: Tensor) -> int:
        """``iw_chunk`` samples, fewer where the decoder's output for the chunk would pass
        ``IW_CHUNK_ELEMENTS`` of the device (e.g. a mixture likelihood's many maps per pixel)."""
        per_sample = len(x) * math.prod(self.likelihood.param_shape(self.hparams.input_shape))
        cap = IW_CHUNK_ELEMENTS["cpu" if x.device.type == "cpu" else "other"]
        return max(1, min(self.hparams.iw_chunk, cap // per_sample))

    def pixel_means(self, z: Tensor) -> Tensor:
        """``E[x|z]`` for samples ``z``, the likelihood in float32."""
        params = self.likelihood_params(z)
        with self.float32():
            return self.likelihood.mean(params)

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """``E[x | z = E_q[z]]``: pixel means decoded from the posterior mean."""
        return self.pixel_means(self.posterior(x).mean)

    @torch.no_grad()
    def generate(self, n: int) -> Tensor:
        """Pixel means decoded from ``n`` prior samples (drawn in float32)."""
        with self.float32():
            z = self.prior_distribution().sample((n,))
        return self.pixel_means(z)
