"""The Gaussian latent's KL, and the importance-weighted bound against the ELBO, checked numerically."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import kl_divergence

from vae_zoo.data import MNISTDataModule
from vae_zoo.latents.normal import NormalLatent
from vae_zoo.models import GaussianVAE


def test_analytic_kl_matches_its_closed_form_and_a_monte_carlo_estimate():
    torch.manual_seed(0)
    latent = NormalLatent(in_features=16, dim=8)
    q = latent.posterior(torch.randn(5, 16) * 2)
    analytic = latent.kl(q, None, "analytic")
    loc, scale = q.base_dist.loc, q.base_dist.scale
    closed_form = 0.5 * (loc**2 + scale**2 - 1 - 2 * scale.log()).sum(-1)
    torch.testing.assert_close(analytic, closed_form)

    z = q.sample((200_000,))
    draws = latent.kl(q, z, "mc")  # log q(z) - log p(z), one value per draw and image
    mean, stderr = draws.mean(0), draws.std(0) / math.sqrt(len(draws))
    assert torch.all((mean - analytic).abs() < 4 * stderr), (mean, analytic, stderr)


def test_mc_kl_mode_trains_to_the_same_objective_in_expectation():
    torch.manual_seed(1)
    latent = NormalLatent(in_features=4, dim=3)
    q = latent.posterior(torch.randn(2, 4))
    assert torch.allclose(kl_divergence(q, latent.prior()), latent.kl(q, q.rsample(), "analytic"))


def _briefly_trained_model(data_dir, steps=150):
    torch.manual_seed(0)
    dm = MNISTDataModule(data_dir)
    dm.setup()
    model = GaussianVAE(
        encoder={"_target_": "vae_zoo.nets.mlp.MLPEncoder", "hidden": [256]},
        decoder={"_target_": "vae_zoo.nets.mlp.MLPDecoder", "hidden": [256]},
        estimator={"_target_": "vae_zoo.estimators.PathwiseEstimator"},
        likelihood={"_target_": "vae_zoo.likelihoods.BernoulliLikelihood"},
        optimizer={"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3},
        latent={"dim": 16},
        iw_chunk=30,
    )
    optimizer = model.configure_optimizers()
    for step, x in zip(range(steps), dm.train_dataloader()):
        recon, kl = model.negative_elbo_terms(x, lambda q: q.rsample())
        optimizer.zero_grad()
        (recon + kl).mean().backward()
        optimizer.step()
    return model, next(iter(dm.test_dataloader()))


def test_importance_weighted_bound_is_never_worse_than_the_elbo_and_tightens_with_k(data_dir):
    model, x = _briefly_trained_model(data_dir)
    torch.manual_seed(2)
    with torch.no_grad():
        recon, kl = model.negative_elbo_terms(x, lambda q: q.sample())
        negative_elbo = (recon + kl).mean().item()
        bounds = {k: model.importance_weighted_nll(x, k).mean().item() for k in (1, 10, 100, 1000)}
    # k = 1 is a one-sample estimate of the negative ELBO: equal up to Monte-Carlo noise
    assert bounds[1] == pytest.approx(negative_elbo, abs=1.0)
    # each larger k is a tighter (smaller) bound on -log p(x); 500 images make the gaps far exceed the noise
    assert negative_elbo > bounds[10] > bounds[100] > bounds[1000]
    assert negative_elbo - bounds[1000] > 2.0


def test_importance_weighted_bound_is_independent_of_the_chunk_size(data_dir):
    model, x = _briefly_trained_model(data_dir, steps=20)
    x = x[:50]
    results = []
    for chunk in (1, 7, 64):
        model.hparams.iw_chunk = chunk
        torch.manual_seed(3)
        results.append(model.importance_weighted_nll(x, 64))
    # the samples differ with the chunking, so agreement is statistical: within 0.5 nats per image mean
    assert max(r.mean().item() for r in results) - min(r.mean().item() for r in results) < 0.5
