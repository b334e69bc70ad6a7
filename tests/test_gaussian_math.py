"""The Gaussian latent's KL, checked against its closed form and a Monte-Carlo estimate."""

from __future__ import annotations

import math

import torch
from torch.distributions import kl_divergence

from vae_zoo.latents.normal import NormalLatent


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
