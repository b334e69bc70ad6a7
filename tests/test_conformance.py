"""One conformance test over every component: each latent x estimator x objective in the config groups either
trains (two steps on real MNIST, finite loss, finite gradients, and a gradient that reaches the encoder) or
is refused at start-up with one line, as the components' stated capabilities predict; the likelihoods take
turns through that grid (the likelihood is independent of the other three), and each likelihood also
trains with every latent family. A new component's ``.yaml`` puts it in the grids without a new test.

A refusal is also checked to be necessary, independently of the pairing code: with the check bypassed,
an estimator refused for a missing requirement cannot draw a sample from that posterior (or, a score-function
estimator, finds no gradient in ``log q`` at its samples: a point mass), and one refused for an objective that
evaluates ``log q(z)`` draws samples outside the posterior's support.
"""

from __future__ import annotations

import itertools
import math

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate

from tests.conftest import build_model, component
from vae_zoo.capabilities import SCORE
from vae_zoo.components import component_class
from vae_zoo.conditions.label import UNLABELLED
from vae_zoo.config_groups import options
from vae_zoo.data import MNISTDataModule
from vae_zoo.data.datamodule import dequantize_uniform
from vae_zoo.data.tensor_batches import TensorBatches
from vae_zoo.errors import ConfigError
from vae_zoo.estimators.estimator import Estimator
from vae_zoo.models import VAE
from vae_zoo.objectives.objective import Objective
from vae_zoo.priors.prior import Prior

GROUPS = ("latent", "estimator", "objective")
LIKELIHOODS = list(options("likelihood"))
#: every latent x estimator x objective, each with the next likelihood in turn
COMBINATIONS = [
    (*combination, LIKELIHOODS[index % len(LIKELIHOODS)])
    for index, combination in enumerate(itertools.product(*(options(group) for group in GROUPS)))
]


#: what an objective that trains on unlabelled images needs of the model: the label as input, and q(y|x)
SEMI_SUPERVISED = {
    "condition": component("condition", "label"),
    "classes": 10,
    "classifier": component("classifier", "mlp", hidden=[16]),
}


def model_needs(objective: str) -> dict:
    """What the model needs for ``objective``: ``SEMI_SUPERVISED`` for one that trains on unlabelled images (it
    trains on images of which a third have their labels), else nothing."""
    objective_class = component_class(options("objective")[objective], Objective, "objective")
    return SEMI_SUPERVISED if objective_class.infers_labels else {}


def stated_problem(latent: str, estimator: str, objective: str) -> str | None:
    """What the components' own declarations say about the pairing: ``requirement``, ``samples``,
    ``exactness``, None."""
    family = instantiate(options("latent")[latent], in_features=4)
    sampler = component_class(options("estimator")[estimator], Estimator, "model.estimator")
    loss = instantiate(options("objective")[objective])
    if not sampler.requires.met_by(family.probe_posterior()):
        return "requirement"
    if sampler.min_objective_samples > loss.samples_per_image:
        return "samples"
    if loss.needs_exact_samples and not sampler.exact_samples:
        return "exactness"
    return None


def first_estimator(latent: str) -> str:
    """The first estimator (by name) that trains ``latent`` on the ELBO."""
    return next(e for e in options("estimator") if stated_problem(latent, e, "elbo") is None)


@pytest.fixture(scope="module")
def batches(data_dir) -> dict[str, TensorBatches]:
    """Two batches of 16 real test images, as binary pixels, 8-bit grey levels and dequantized levels; the
    grey levels also as the rows of a table (784 real columns); the binary pixels also with their labels, and
    each kind with a third of its labels (the others ``UNLABELLED``)."""
    dm = MNISTDataModule(data_dir, binarize="none")
    dm.setup()
    levels = dm.splits["test"][:32]
    grey = levels.float() / 255
    binary = torch.bernoulli(grey, generator=torch.Generator().manual_seed(0))
    dequantized = dequantize_uniform(levels, torch.Generator().manual_seed(0))
    labels = torch.as_tensor(dm.load_train_test_labels()[1][:32])
    partly = torch.where(torch.arange(32) % 3 == 0, labels, UNLABELLED)
    kinds = (("binary", binary), ("8bit", grey), ("dequantized", dequantized), ("table", grey))
    return {
        "labelled": TensorBatches(binary, 16, lambda t, g: t, labels=labels),
        "partly labelled": {
            pixels: TensorBatches(images, 16, lambda t, g: t, labels=partly) for pixels, images in kinds
        },
        **{pixels: TensorBatches(images, 16, lambda t, g: t) for pixels, images in kinds},
    }


class CheckSteps(pl.Callback):
    """Before each optimizer step: the loss and every gradient finite, and the encoder's gradient nonzero."""

    def __init__(self) -> None:
        self.steps = 0

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        assert torch.isfinite(pl_module.step_output.loss)
        assert all(torch.isfinite(v) for v in pl_module.step_output.terms.values())
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        encoder_grad = sum(p.grad.abs().sum() for p in pl_module.model.encoder.parameters())
        assert encoder_grad > 0, "no gradient reached the encoder through the estimator"
        self.steps += 1


@pytest.mark.parametrize(
    ("latent", "estimator", "objective", "likelihood"), COMBINATIONS, ids=["-".join(c) for c in COMBINATIONS]
)
def test_every_combination_trains_or_is_refused_as_its_capabilities_predict(
    latent, estimator, objective, likelihood, batches
):
    torch.manual_seed(0)
    problem = stated_problem(latent, estimator, objective)
    needs = model_needs(objective)
    if problem is not None:
        with pytest.raises(ConfigError) as refusal:
            build_model(latent, estimator, objective, likelihood, **needs)
        message = str(refusal.value)
        assert "\n" not in message and message.startswith(f"estimator={estimator} does not pair with ")
        named = {
            "requirement": f"latent={latent}",
            "samples": f"objective={objective}",
            "exactness": f"objective={objective}",
        }[problem]
        assert f"does not pair with {named}" in message
        valid = message.split("choose one of: ")[1].split(", ")
        assert valid and f"estimator={estimator}" not in valid
        assert all(stated_problem(latent, v.removeprefix("estimator="), objective) is None for v in valid)
        return

    model = build_model(latent, estimator, objective, likelihood, **needs)
    train_two_steps(model, batches["partly labelled"] if needs else batches)


@pytest.mark.parametrize(("latent", "likelihood"), list(itertools.product(options("latent"), LIKELIHOODS)))
def test_every_likelihood_trains_with_every_latent_family(latent, likelihood, batches):
    torch.manual_seed(0)
    train_two_steps(build_model(latent, first_estimator(latent), "elbo", likelihood), batches)


@pytest.mark.parametrize(("prior", "latent"), list(itertools.product(options("prior"), options("latent"))))
def test_every_prior_trains_with_every_latent_family_it_fits_or_is_refused_in_one_line(
    prior, latent, batches
):
    torch.manual_seed(0)
    prior_class = component_class(options("prior")[prior], Prior, "model.prior")
    needs = prior_class.requires
    family = instantiate(options("latent")[latent], in_features=4)
    # a prior of the label, p(z|y), in a conditional model on labelled images
    conditional = "condition_features" in prior_class.sizes
    condition = {"condition": component("condition", "label"), "classes": 10} if conditional else {}
    build = lambda: build_model(
        latent, first_estimator(latent), "elbo", prior=component("prior", prior), **condition
    )
    if needs.met_by(family.probe_posterior()):
        train_two_steps(build(), batches["labelled"] if conditional else batches)
        return
    with pytest.raises(ConfigError) as refusal:
        build()
    assert "\n" not in str(refusal.value) and str(refusal.value).startswith(
        f"prior={prior} needs {needs.needs}"
    )


@pytest.mark.parametrize(
    ("flow", "estimator"), list(itertools.product(options("flow"), options("estimator")))
)
def test_every_flow_trains_with_the_estimators_its_posterior_pairs_with_or_is_refused(
    flow, estimator, batches
):
    torch.manual_seed(0)
    flowed = build_model("normal", "pathwise", "iwae", flow=component("flow", flow)).model.probe_posterior()
    sampler = component_class(options("estimator")[estimator], Estimator, "model.estimator")
    build = lambda: build_model("normal", estimator, "iwae", flow=component("flow", flow))
    if sampler.requires.met_by(flowed):
        train_two_steps(build(), batches)
        return
    with pytest.raises(ConfigError) as refusal:
        build()
    message = str(refusal.value)
    assert "\n" not in message and message.startswith(
        f"estimator={estimator} does not pair with latent=normal"
    )


def train_two_steps(model: VAE, batches: dict[str, TensorBatches] | TensorBatches) -> None:
    """Two optimizer steps on batches of the pixels the likelihood fits (or on ``batches`` themselves), each
    checked by ``CheckSteps``."""
    if isinstance(batches, dict):
        batches = batches[model.model.likelihood.fits[0]]
    check = CheckSteps()
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=2,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[check],
    )
    trainer.fit(model, train_dataloaders=batches)
    assert check.steps == 2


def _bypassing_the_check(latent: str, estimator: str, objective: str) -> VAE:
    """The model built with its pairing check switched off, to try what the check refuses."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("vae_zoo.models.vae.check_pairing", lambda *args: None)
        return build_model(latent, estimator, objective, **model_needs(objective))


REFUSED = sorted({c[:3] for c in COMBINATIONS if stated_problem(*c[:3]) is not None})


@pytest.mark.parametrize(("latent", "estimator", "objective"), REFUSED, ids=["-".join(c) for c in REFUSED])
def test_every_refusal_is_necessary(latent, estimator, objective):
    model = _bypassing_the_check(latent, estimator, objective)
    x = torch.rand(4, 1, 28, 28).bernoulli()
    conditional = bool(model_needs(objective))
    with model.model.given(torch.arange(4) if conditional else None):
        q = model.model.posterior(x)
    problem = stated_problem(latent, estimator, objective)
    if problem == "requirement" and model.model.estimator.requires is SCORE:
        # a score-function estimator's gradient is log q's at its samples, which has none to give
        log_q = q.log_prob(model.model.estimator.sample(q)).sum()
        if log_q.requires_grad:
            grads = torch.autograd.grad(log_q, list(model.model.parameters()), allow_unused=True)
            assert all(g is None or not g.any() for g in grads)
    elif problem == "requirement":  # no sample at all, or samples outside q's support
        try:
            z = model.model.estimator.sample(q)
        except (NotImplementedError, AttributeError, TypeError):
            return
        assert not q.support.check(z).all()
    elif problem == "samples":  # the estimator reads per-sample terms this objective's cost does not have
        partly = torch.tensor([0, UNLABELLED, 1, UNLABELLED]) if conditional else None
        with pytest.raises((AttributeError, TypeError, IndexError)), model.model.given(partly):
            model.training_loss(x)
    else:  # the objective would evaluate log q(z) at samples outside q's support
        z = model.model.estimator.sample(q)
        assert not q.support.check(z).all()


def test_the_grid_is_what_the_config_groups_hold():
    counts = {group: len(options(group)) for group in GROUPS}
    assert len(COMBINATIONS) == math.prod(counts.values())
    assert {c[3] for c in COMBINATIONS} == set(LIKELIHOODS)
    trained = [c for c in COMBINATIONS if stated_problem(*c[:3]) is None]
    # every latent trains with some estimator under every objective, and every estimator with some latent
    for latent, objective in itertools.product(options("latent"), options("objective")):
        assert any(c[0] == latent and c[2] == objective for c in trained), (latent, objective)
    for estimator in options("estimator"):
        assert any(c[1] == estimator for c in trained), estimator
