"""The probabilistic model: a plain ``torch.nn.Module``, usable without a Trainer.

Encoder -> latent family (-> flow) -> estimator -> decoder -> likelihood, with the prior component. Per image,
with ``z ~ q(z|x)``:
    negative ELBO  = -log p(x|z) + KL(q(z|x) || p(z))
    IW bound       = -log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x),  z_i ~ q  (Burda et al. 2016)
both in nats per image (summed over pixels) as positive numbers. Sampling, log-probabilities and KL run in
float32 with autocast off; encoder and decoder run under it. A conditional model (``condition=label``) is
``q(z|x, y)``, ``p(x|z, y)`` with the prior ``p(z)``: the same terms, with each image's label ``y`` given for
the duration of a computation (``given``), so that its bounds are on ``-log p(x|y)``. Every path (training, evaluation, the IW bound,
reconstructions, samples) goes through ``posterior``, ``sample``/``q.sample`` and ``nll``. Objectives and priors
receive it as ``vae_zoo.forward_path.ForwardPath``; the LightningModule (``vae_zoo.models.VAE``) trains it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution, Independent, kl_divergence

from vae_zoo.active_units import UnitSpread
from vae_zoo.amortization_gap import AmortizationGap, amortization_gap
from vae_zoo.capabilities import FIXED_PARAMETERS, has_closed_form_kl, is_point_mass
from vae_zoo.components import build, build_with_sizes
from vae_zoo.conditions.label import ABSENT, LabelCondition, every_class
from vae_zoo.config_groups import option_for_target, option_name
from vae_zoo.errors import ConfigError
from vae_zoo.estimators.estimator import Cost, Draw, Estimator, surrogate_and_statistics
from vae_zoo.flows.flow import Flow
from vae_zoo.flows.posterior import FlowPosterior
from vae_zoo.latents.family import LatentFamily
from vae_zoo.likelihoods.likelihood import Likelihood
from vae_zoo.mutual_information import AggregatePosterior
from vae_zoo.objectives.iwae import importance_weighted_nll
from vae_zoo.packed_batch import batch_mean, per_image_copies
from vae_zoo.pairing import check_support
from vae_zoo.priors.prior import Prior

DEFAULT_PRIOR = {"_target_": "vae_zoo.priors.standard.StandardPrior"}

#: the most decoder-output elements one chunk of the IW bound holds (2^26 floats: 256 MB); on the CPU 2^21
#: (8 MB), which keeps a chunk's activations in cache: 1.6 times the images/s of 2^26 at k = 1000
IW_CHUNK_ELEMENTS = {"cpu": 2**21, "other": 2**26}


class ElboSurgery(NamedTuple):
    """The mean KL taken apart (``vae_zoo.mutual_information``): ``I_q(x; z)`` and ``KL(q(z) || p(z))``, in nats."""

    mutual_info: float
    marginal_kl: float


class ElboTerms(NamedTuple):
    """Per-image terms of the negative ELBO."""

    recon: Tensor  # -log p(x|z)
    kl: Tensor  # KL(q(z|x) || p(z)): closed form, or log q(z) - log p(z) at the sample


def full_precision(tensor: Tensor) -> Tensor:
    """``tensor`` in float32 if autocast made it half or bfloat16; float32 and float64 pass unchanged."""
    return tensor if tensor.dtype in (torch.float32, torch.float64) else tensor.float()


class ProbabilisticModel(nn.Module):
    """``q(z|x)``, ``p(z)`` and ``p(x|z)`` with the estimator that draws training samples, every part built from
    its config dict (``_target_`` plus settings). ``input_shape`` sizes the networks (the decoder is built for
    the likelihood's ``param_shape``); a likelihood that is no density of the data's ``pixels`` is refused
    (``pixels=None`` skips that check), and so is a prior or flow that needs of the posterior what the latent
    family lacks. ``iw_chunk`` bounds the samples the importance-weighted bound decodes at once. A conditional
    model (``condition``, ``classes``) may also infer the label: ``classifier`` builds ``q(y|x)`` (Kingma et al.
    2014's M2, trained by ``objective=semi_supervised``). ``discriminator`` builds the total correlation's
    discriminator (Kim & Mnih 2018's FactorVAE, trained by the ELBO, ``objective.factor_weight``)."""

    #: models whose weights this module holds stacked, their images in turn along the batch (``vae_zoo.packing``)
    models: int = 1
    #: the stacked parameters of which each image reads its model's copy, where models are packed
    #: (``vae_zoo.packed_batch.per_image_copies``)
    per_image_parameters: tuple[str, ...] = ()

    def __init__(
        self,
        encoder: dict[str, Any],
        decoder: dict[str, Any],
        latent: dict[str, Any],
        estimator: dict[str, Any],
        likelihood: dict[str, Any],
        prior: dict[str, Any] | None = None,
        flow: dict[str, Any] | None = None,
        input_shape: Sequence[int] = (1, 28, 28),
        pixels: str | None = None,
        iw_chunk: int = 100,
        condition: dict[str, Any] | None = None,
        classes: int | None = None,
        classifier: dict[str, Any] | None = None,
        discriminator: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.input_shape, self.pixels, self.iw_chunk = tuple(input_shape), pixels, iw_chunk
        self.prior_alone = False  # whether p(z)'s parameters train alone (``train_prior_alone``)
        # moves with the model (.to, .cuda): where it is, read in ~1 us (not saved: checkpoints keep their keys)
        self.register_buffer("device_marker", torch.empty(0), persistent=False)
        self.condition = (
            build(condition, LabelCondition, "model.condition", classes=classes) if condition else None
        )
        # the networks' extra input width: passed only to a conditional model's (a user's nets need not know it)
        conditioned = {"condition_features": self.condition.out_features} if self.condition else {}
        self.labels: Tensor | None | str = None  # what ``given`` set: each image's class, or ABSENT
        if classifier and self.condition is None:
            option = option_for_target("classifier", classifier.get("_target_", ""))
            given = f"classifier={option}" if option else "a classifier"
            raise ConfigError(
                f"{given} infers the label of a conditional model: add condition=label, or classifier=none"
            )
        self.classifier = (
            build(classifier, nn.Module, "model.classifier", input_shape=self.input_shape, classes=classes)
            if classifier
            else None
        )
        self.encoder = build(encoder, nn.Module, "model.encoder", input_shape=self.input_shape, **conditioned)
        self.latent = build_with_sizes(
            latent,
            LatentFamily,
            "model.latent",
            {"grid_shape": getattr(self.encoder, "grid_shape", None)},
            in_features=self.encoder.out_features,
        )
        self.likelihood = build_with_sizes(
            likelihood, Likelihood, "model.likelihood", {"input_shape": self.input_shape}
        )
        if pixels is not None:
            self.likelihood.check_data(pixels)
        self.decoder = build(
            decoder,
            nn.Module,
            "model.decoder",
            in_features=self.latent.sample_features,
            output_shape=self.likelihood.param_shape(self.input_shape),
            **conditioned,
        )
        # a flattened sample's width (the decoder may read less or more: z1 of two layers, an angle's cos and sin)
        latent_features = math.prod(self.latent.probe_posterior().event_shape)
        sizes = {
            "input_shape": self.input_shape,
            "latent_features": latent_features,
            "condition_features": conditioned.get("condition_features"),  # None: an unconditional model
        }
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
        self.discriminator = (
            build(discriminator, nn.Module, "model.discriminator", latent_features=latent_features)
            if discriminator
            else None
        )
        check_support(self.prior, "prior", self.latent)
        if self.flow is not None:
            check_support(self.flow, "flow", self.latent)
        # decided once: whether torch's KL registry has KL(q || p) for the posterior and the prior component
        with self.given(ABSENT):
            self.closed_form_kl = self.flow is None and has_closed_form_kl(
                self.latent.probe_posterior(), self.prior_distribution()
            )
        #: whether the posterior is a point mass (``capabilities.is_point_mass``), decided once
        self.point_mass = is_point_mass(self.latent.probe_posterior())

    @property
    def kl_origin(self) -> str:
        """How the KL is computed: ``closed form``, or ``one-sample estimate`` (at the objective's sample in
        training, at the exact posterior sample in evaluation) where the prior, the family or a flow has
        none."""
        return "closed form" if self.closed_form_kl else "one-sample estimate"

    @property
    def posterior_name(self) -> str:
        """The posterior as messages name it: ``latent=<option>``, and ``through flow=<option>``."""
        name = option_name("latent", self.latent)
        return name + (f" through {option_name('flow', self.flow)}" if self.flow is not None else "")

    # -- conditioning --------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def given(self, labels: Tensor | None | str) -> Iterator[None]:
        """Inside: a conditional model computes on images whose classes are ``labels`` (one per image of the
        batch, in its order; for samples ``z`` of shape ``(..., B, D)`` one per row ``B``), or ``ABSENT``
        (the zero condition: inputs without a label). An unconditional model ignores it."""
        outer, self.labels = self.labels, labels
        try:
            yield
        finally:
            self.labels = outer

    def condition_input(self, rows: int) -> Tensor | None:
        """The networks' condition ``c(y)`` for each image given (``rows`` of the zero condition where ``ABSENT``
        is given; None for an unconditional model)."""
        if self.condition is None:
            return None
        if self.labels is None:
            raise ConfigError(
                "this model is conditional (condition=label): give each image's class, e.g. model.encode(x, y)"
            )
        if isinstance(self.labels, str):
            return self.condition.absent(rows, self.device_marker.device)
        return self.condition(self.labels)

    @contextlib.contextmanager
    def for_every_class(self, x: Tensor) -> Iterator[Tensor]:
        """Inside: the model computes on the rows it yields, each image of ``x`` once per class given that class
        (``every_class``: image by image, so a value per row reshaped to ``(B, classes)`` is per image and
        class), each packed model's per-image parameters copied onto its rows."""
        rows, labels = every_class(x, self.condition.classes)
        with self.given(labels), per_image_copies(self, len(rows) // self.models):
            yield rows

    def class_log_probs(self, x: Tensor) -> Tensor:
        """``log q(y|x)`` ``(B, classes)`` of images ``x`` from the classifier, in float32."""
        logits = full_precision(self.classifier(self.likelihood.standardize(x)))
        with self.autocast_off():
            return torch.log_softmax(logits, dim=-1)

    # -- the forward path (``vae_zoo.forward_path.ForwardPath``) ------------------------------------------

    def batch_mean(self, per_image: Tensor) -> Tensor:
        """The mean over the images of a batch and any sample dims before them: a scalar; with ``models = N``
        packed (``vae_zoo.packing``: the batch holds each model's images in turn) one mean per model, ``(N,)``."""
        return batch_mean(per_image, self.models)

    def autocast_off(self) -> AbstractContextManager:
        """Autocast off (for sampling, log-probabilities and KL), where autocast is on at all."""
        device = self.device_marker.device.type
        if torch.is_autocast_enabled(device):
            return torch.autocast(device, enabled=False)
        return nullcontext()

    def posterior(self, x: Tensor, flow: bool = True) -> Distribution:
        """``q(z|x)``: the encoder under autocast, the distribution in float32, through the flow if there is
        one (``flow=False``: the base posterior)."""
        features = self.features(x)
        with self.autocast_off():
            return self.posterior_of_features(features, flow)

    def features(self, x: Tensor) -> Tensor:
        """The encoder's features of ``x`` (given its labels, a conditional model's), in float32: what the latent
        family (and a flow) make ``q(z|x)`` of."""
        condition = self.condition_input(len(x))
        x = self.likelihood.standardize(x)
        return full_precision(self.encoder(x) if condition is None else self.encoder(x, condition))

    def posterior_of_features(self, features: Tensor, flow: bool = True) -> Distribution:
        """``q(z|x)`` from the encoder's ``features``: the latent family's, through the flow if there is one."""
        q = self.latent.posterior(features)
        return FlowPosterior(q, self.flow.transforms(features)) if flow and self.flow is not None else q

    def own_parameter_groups(self) -> list[dict]:
        """The optimizer parameter groups with settings of their own (``lr``): the estimator's, then the
        discriminator's; the model's optimizer trains the rest in its one group."""
        own = self.estimator.param_groups()
        return own + (self.discriminator.param_groups() if self.discriminator is not None else [])

    def is_prior_state(self, name: str) -> bool:
        """Whether the state-dict key ``name`` belongs to ``p(z)``: the prior component's, or the latent family's
        own prior's (``LatentFamily.prior_state``)."""
        owners = ("prior", *(f"latent.{attribute}" for attribute in self.latent.prior_state))
        return any(name == owner or name.startswith(f"{owner}.") for owner in owners)

    def prior_modules(self) -> list[nn.Module]:
        """The modules of ``p(z)``: the prior component, and the latent family's own prior's networks."""
        attributes = (getattr(self.latent, name, None) for name in self.latent.prior_state)
        return [self.prior, *(module for module in attributes if isinstance(module, nn.Module))]

    def train_prior_alone(self) -> None:
        """From now on train ``p(z)``'s parameters alone (``init.train=prior``: the prior fitted after training, as
        VQ-VAE's PixelCNN is): every other parameter is frozen, and the modules outside the prior stay in
        evaluation mode while training, so that no running statistics move (a moving-average codebook, an
        estimator's baselines)."""
        names = [name for name, _ in self.named_parameters() if self.is_prior_state(name)]
        if not names:
            raise ConfigError(
                "init.train=prior fits p(z)'s parameters, and this model's prior has none -- choose a learned "
                "prior (prior=learned_normal, mog or vamp; model.latent.prior=learned, or for model=vq_vae "
                "autoregressive or pixelcnn), or init.train=all"
            )
        for name, parameter in self.named_parameters():
            parameter.requires_grad_(name in names)
        self.prior_alone = True
        self.train(self.training)

    def train(self, mode: bool = True) -> ProbabilisticModel:
        """The switch into training mode, which leaves all but the prior in evaluation mode while the prior trains
        alone (``train_prior_alone``)."""
        super().train(mode)
        if mode and self.prior_alone:
            super().train(False)
            for module in self.prior_modules():
                module.train()
        return self

    def probe_posterior(self) -> Distribution:
        """The posterior for one all-zero feature vector, through any flow: what estimators are paired on (the
        family's own probe, ``LatentFamily.probe_posterior``, is what priors and flows are checked on)."""
        with torch.no_grad():
            return self.posterior_of_features(torch.zeros(1, self.latent.in_features))

    def prior_distribution(self) -> Distribution:
        """``p(z)``, the prior component's, in float32; a conditional prior's ``p(z|y)`` has one batch entry per
        image given (``given``)."""
        with self.autocast_off():
            return self.prior.distribution(self)

    def training_sample(self, q: Distribution, sample_shape: torch.Size | tuple[int, ...] = ()) -> Draw:
        """The estimator's training sample(s) of ``q`` (``.value``) with what its surrogate needs, in float32."""
        with self.autocast_off():
            return self.estimator.draw(q, sample_shape)

    def likelihood_params(self, z: Tensor) -> Tensor:
        """The decoder's output for samples ``z`` (any leading sample dims), in float32."""
        inputs = self.latent.decoder_input(z)
        condition = self.condition_input(inputs.shape[-2] if inputs.dim() > 1 else 1)
        return full_precision(self.decoder(inputs) if condition is None else self.decoder(inputs, condition))

    def nll(self, x: Tensor, z: Tensor) -> Tensor:
        """``-log p(x|z)`` per sample and image."""
        params = self.likelihood_params(z)
        with self.autocast_off():
            return self.likelihood.nll(params, x)

    def kl(self, q: Distribution) -> Tensor:
        """The closed-form ``KL(q || p)`` per image against the prior component, through torch's KL registry, in
        float32 (only where ``closed_form_kl``)."""
        with self.autocast_off():
            return kl_divergence(q, self.prior_distribution())

    def kl_per_unit(self, q: Distribution) -> Tensor:
        """The closed-form ``KL(q || p)`` per image and latent unit, ``(B, units)``: of the distributions inside the
        posterior's and the prior's ``Independent`` over the units (summed, ``kl``), in float32 (only where
        ``closed_form_kl``)."""
        with self.autocast_off():
            p = self.prior_distribution()
            if not all(isinstance(d, Independent) and d.reinterpreted_batch_ndims == 1 for d in (q, p)):
                raise ConfigError(
                    f"{self.posterior_name}'s posterior and prior are not Independent over latent units, which "
                    "objective.free_bits needs: set objective.free_bits=0"
                )
            return kl_divergence(q.base_dist, p.base_dist)

    def unit_log_probs(self, q: Distribution, values: Tensor) -> Tensor:
        """``log q(value_u)`` per latent unit ``u``, from the distribution inside the posterior's ``Independent``
        over the units, in float32; ``values`` broadcast against q's images (``(..., B, units)``; only where q meets
        ``capabilities.INDEPENDENT_UNITS``)."""
        with self.autocast_off():
            return q.base_dist.log_prob(values)

    def kl_estimate(self, q: Distribution, z: Tensor, p: Distribution | None = None) -> Tensor:
        """``log q(z) - log p(z)`` per sample and image, in float32 (``p``: the prior, if already built)."""
        with self.autocast_off():
            p = p if p is not None else self.prior_distribution()
            return q.log_prob(z) - p.log_prob(z)

    def log_weights(self, x: Tensor, q: Distribution, z: Tensor, p: Distribution | None = None) -> Tensor:
        """``log w = log p(x|z) + log p(z) - log q(z|x)`` per sample and image."""
        nll = self.nll(x, z)
        return -nll - self.kl_estimate(q, z, p)

    def surrogate(self, q: Distribution, draw: Draw, cost: Cost) -> Tensor | None:
        """The estimator's surrogate term for ``cost`` (None for pathwise estimators), in float32; in training
        mode its running statistics then move with this batch (``surrogate_and_statistics``)."""
        with self.autocast_off():
            return surrogate_and_statistics(self.estimator, q, draw, cost)

    def latent_loss(self, q: Distribution, weights: Tensor | None = None) -> Tensor | None:
        """The latent family's own loss per image at ``q`` (``LatentFamily.own_loss``), in float32; None for most. In
        training mode the family's running statistics then move with this batch, each image's weighted by
        ``weights`` where given (``LatentFamily.update_statistics``)."""
        with self.autocast_off():
            loss = self.latent.own_loss(q)
            if self.latent.training:
                with torch.no_grad():
                    self.latent.update_statistics(q, weights)
            return loss

    def negative_elbo_terms(self, x: Tensor, sample: Callable[[Distribution], Tensor]) -> ElboTerms:
        """Per-image ``-log p(x|z)`` and ``KL(q || p)`` with ``z = sample(q(z|x))``: the closed form where
        there is one, else ``log q(z) - log p(z)`` at that sample (``kl_origin``)."""
        q = self.posterior(x)
        with self.autocast_off():
            z = sample(q)
        return ElboTerms(self.nll(x, z), self.kl_at(q, z))

    def kl_at(self, q: Distribution, z: Tensor) -> Tensor:
        """``KL(q || p)`` per image: the closed form where there is one, else ``log q(z) - log p(z)`` at ``z``."""
        return self.kl(q) if self.closed_form_kl else self.kl_estimate(q, z)

    def forward(self, x: Tensor) -> Tensor:
        """The negative ELBO per image, with an exact posterior sample and the closed-form KL where there is
        one (what validation reports). The sample is drawn inside ``fork_rng``, so a call leaves the random
        streams of training unchanged."""
        with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
            recon, kl = self.negative_elbo_terms(x, lambda q: q.sample())
        return recon + kl

    # -- the Python API (``vae_zoo.load``) ------------------------------------------------------------------

    def given_labels(self, y: Tensor | None, rows: int) -> AbstractContextManager:
        """``given(y)`` for a user's call with ``rows`` images or samples, ``y`` checked first (a conditional
        model's: one class per row); without ``y`` what is already given stays."""
        if y is None:
            return nullcontext()
        if self.condition is None:
            raise ConfigError("this model is unconditional (condition=none): call it without labels y")
        self.condition.check(y, rows)
        return self.given(y)

    def encode(self, x: Tensor, y: Tensor | None = None) -> Distribution:
        """``q(z|x)`` of images ``x`` ``(B, C, H, W)`` (a conditional model's ``q(z|x, y)``, ``y`` their
        classes ``(B,)``): a distribution with one batch entry per image."""
        with self.given_labels(y, len(x)):
            return self.posterior(x)

    def decode(self, z: Tensor, y: Tensor | None = None) -> Distribution:
        """``p(x|z)`` of latent samples ``z`` (any leading dims; a conditional model's ``p(x|z, y)``, ``y`` one
        class per row of ``z``'s batch dim): a distribution over images, with ``mean``, ``sample()`` and
        ``log_prob(x)`` (nats per image)."""
        with self.given_labels(y, z.shape[-2] if z.dim() > 1 else 1):
            params = self.likelihood_params(z)
        with self.autocast_off():
            return self.likelihood.distribution(params, self.input_shape)

    def classify(self, x: Tensor) -> Categorical:
        """``q(y|x)`` of images ``x`` ``(B, C, H, W)``: a ``Categorical`` over the classes per image (its
        ``probs.argmax(-1)`` the predicted class); one line for a model without a classifier."""
        if self.classifier is None:
            raise ConfigError("this model has no classifier q(y|x): train it with classifier=mlp (or conv)")
        return Categorical(logits=self.class_log_probs(x))

    def latent_prior(self, y: Tensor | None = None) -> Distribution:
        """``p(z)`` as a ``torch.distributions`` object over the latent samples; for a prior of the label
        (``prior=conditional_normal``) ``p(z|y)``, one batch entry per class of ``y`` ``(B,)``."""
        with self.given_labels(y, 0 if y is None else len(y)):
            return self.prior_distribution()

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | None = None) -> Tensor:
        """``n`` images ``x ~ p(x|z)``, ``z ~ p(z)`` (a conditional model's ``p(x|z, y)``, ``y`` ``(n,)``
        classes; ``generate(n)``: their pixel means instead)."""
        with self.given_labels(y, n):
            p = self.decode(self.prior_samples(n))
        with self.autocast_off():
            return p.sample()

    def log_likelihood(self, x: Tensor, k: int = 1000, y: Tensor | None = None) -> Tensor:
        """The importance-weighted lower bound on ``log p(x)`` per image (a conditional model's ``log p(x|y)``),
        in nats, with ``k`` exact samples: ``-importance_weighted_nll(x, k)``, whose mean over the test images
        is ``test/nll_iw``. A model that infers the label (``classifier=mlp``), without ``y``: the bound on
        ``log p(x)`` with the class summed out, ``-marginal_importance_weighted_nll(x, k)``."""
        if y is None and self.classifier is not None:
            return -self.marginal_importance_weighted_nll(x, k)
        with self.given_labels(y, len(x)):
            return -self.importance_weighted_nll(x, k)

    @torch.no_grad()
    def active_units(self, x: Tensor, y: Tensor | None = None) -> int:
        """How many latent units vary across the images ``x`` (given ``y``, a conditional model's):
        ``Cov_x(E_q[u|x]) > 0.01`` (``vae_zoo.active_units``); on the test images, ``test/active_units``."""
        spread = UnitSpread()
        with self.given_labels(y, len(x)):
            spread.add(self.unit_locations(self.posterior(x)))
        (count,) = spread.active_units()
        return count

    @torch.no_grad()
    def mutual_information(self, x: Tensor, y: Tensor | None = None) -> ElboSurgery:
        """The mutual information ``I_q(x; z)`` between the images ``x`` (given ``y``, a conditional model's) and
        their codes, and the aggregate posterior's ``KL(q(z) || p(z))``, the mean KL less it (NaN with a prior of
        the label), in nats, from one exact sample per image (``vae_zoo.mutual_information``); on the test images,
        ``test/mutual_info`` and ``test/marginal_kl``."""
        with self.given_labels(y, len(x)):
            q = self.posterior(x)
            if not FIXED_PARAMETERS.met_by(q):
                raise ConfigError(
                    f"{self.posterior_name}'s posterior has no density at other images' samples (its parameters "
                    "are not tensors), which the aggregate posterior needs: the mutual information is for a "
                    "model without a flow or a second latent layer"
                )
            with self.autocast_off():
                z = q.sample()
            aggregate = AggregatePosterior()
            aggregate.add(q, z, self.kl_at(q, z), self.models)
        ((information,), (marginal,)) = aggregate.estimates()
        return ElboSurgery(information, math.nan if self.prior_of_label else marginal)

    def amortization_gap(
        self, x: Tensor, y: Tensor | None = None, steps: int = 500, lr: float = 0.05, samples: int = 10
    ) -> AmortizationGap:
        """The negative ELBO of each image ``x`` (given ``y``, a conditional model's) under the encoder's posterior
        and under a posterior of the same family fitted to that image alone (``steps`` of Adam at rate ``lr`` on
        its features, the model fixed), each from ``samples`` exact draws; ``.gap``, their difference, is the
        amortization gap (``vae_zoo.amortization_gap``)."""
        with self.given_labels(y, len(x)):
            return amortization_gap(self, x, steps, lr, samples)

    @property
    def prior_of_label(self) -> bool:
        """Whether the prior is ``p(z|y)`` (sized by the condition, ``prior=conditional_normal``)."""
        return "condition_features" in self.prior.sizes

    # -- evaluation and pictures --------------------------------------------------------------------------

    def importance_weighted_nll(self, x: Tensor, k: int) -> Tensor:
        """``-log (1/k) sum_i w_i`` per image (``vae_zoo.objectives.iwae.importance_weighted_nll``), drawn
        ``iw_chunk_size(x)`` samples at a time. A point-mass posterior's k samples are one point, whose k weights
        are equal (``L_k = L_1``): it draws one."""
        k = 1 if self.point_mass else k
        return importance_weighted_nll(self, x, k, self.iw_chunk_size(x))

    def marginal_importance_weighted_nll(self, x: Tensor, k: int) -> Tensor:
        """``-log sum_y p(y) (1/k) sum_i w_i(y)`` per image, ``w_i(y) = p(x|z_i, y) p(z_i) / q(z_i|x, y)`` for
        every class ``y`` with ``p(y) = 1/classes``: a lower bound on ``log p(x)`` (the mean over ``y`` of unbiased
        estimates of ``p(x|y)``, under a log), the label summed out exactly (``test/nll_iw_marginal``)."""
        with self.for_every_class(x) as rows:
            per_class = self.importance_weighted_nll(rows, k).reshape(len(x), -1)
        return math.log(per_class.shape[1]) - torch.logsumexp(-per_class, dim=1)

    def iw_chunk_size(self, x: Tensor) -> int:
        """``iw_chunk`` samples, fewer where the decoder's output for the chunk would pass
        ``IW_CHUNK_ELEMENTS`` of the device (e.g. a mixture likelihood's many maps per pixel)."""
        outputs_per_sample = len(x) * math.prod(self.likelihood.param_shape(self.input_shape))
        cap = IW_CHUNK_ELEMENTS["cpu" if x.device.type == "cpu" else "other"]
        return max(1, min(self.iw_chunk, cap // outputs_per_sample))

    @property
    def pixel_levels(self) -> bool:
        """Whether the likelihood is a distribution of the data's 8-bit levels (a pmf of them, or a density of
        their dequantization), so that its bounds convert to bits per dimension."""
        return self.likelihood.level_offset(self.pixels) is not None

    def bits_per_dim(self, nats: Tensor) -> Tensor:
        """Nats per image to bits per dimension, ``(nats + D c) / (D ln 2)`` with ``c`` the likelihood's own
        per-dimension offset (``Likelihood.level_offset``: ``ln 256`` for a density of dequantized levels)."""
        dims = math.prod(self.input_shape)
        offset = dims * self.likelihood.level_offset(self.pixels)
        return (nats + offset) / (dims * math.log(2))

    def pixel_means(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """``E[x|z]`` (a conditional model's ``E[x|z, y]``) for samples ``z``, the likelihood in float32."""
        p = self.decode(z, y)
        with self.autocast_off():
            return p.mean

    def prior_samples(self, n: int) -> Tensor:
        """``n`` draws of ``p(z)`` in float32; of a conditional prior's ``p(z|y)``, one per label given (``n``)."""
        with self.autocast_off():
            p = self.prior_distribution()
            return p.sample((n,)) if not p.batch_shape else p.expand((n,)).sample()

    def unit_locations(self, q: Distribution) -> Tensor:
        """``(models, images, units, coordinates)``: each latent unit's location under the posterior ``q`` of
        a batch (``LatentFamily.unit_locations``), whose spread across the data counts the active units
        (``vae_zoo.active_units``)."""
        locations = self.latent.unit_locations(q)
        return locations.reshape(self.models, -1, *locations.shape[1:])

    @torch.no_grad()
    def reconstruct(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """``E[x | z = E_q[z]]``: pixel means decoded from the posterior mean (given ``y``, a conditional
        model's)."""
        with self.given_labels(y, len(x)):
            return self.pixel_means(self.posterior(x).mean)

    @torch.no_grad()
    def generate(self, n: int, y: Tensor | None = None) -> Tensor:
        """Pixel means decoded from ``n`` prior samples (drawn in float32; given ``y``, a conditional model's)."""
        with self.given_labels(y, n):
            return self.pixel_means(self.prior_samples(n))
