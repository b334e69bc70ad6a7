"""The Gaussian latent's KL, checked against its closed form, torch's registry and a Monte-Carlo estimate."""

from __future__ import annotations

import math

import torch
from torch.distributions import kl_divergence

from vae_zoo.latents.normal import NormalLatent


def test_closed_form_kl_matches_the_formula_and_the_mean_of_its_one_sample_estimate():
    torch.manual_seed(0)
    latent = NormalLatent(in_features=16, dim=8)
    q = latent.posterior(torch.randn(5, 16) * 2)
    analytic = latent.kl(q)
    loc, scale = q.base_dist.loc, q.base_dist.scale
    closed_form = 0.5 * (loc**2 + scale**2 - 1 - 2 * scale.log()).sum(-1)
    torch.testing.assert_close(analytic, closed_form)

    z = q.sample((200_000,))
    draws = q.log_prob(z) - latent.prior().log_prob(z)  # the one-sample estimate, per draw and image
    mean, stderr = draws.mean(0), draws.std(0) / math.sqrt(len(draws))
    assert torch.all((mean - analytic).abs() < 4 * stderr), (mean, analytic, stderr)


def test_closed_form_kl_equals_torchs_registered_normal_kl():
    torch.manual_seed(1)
    latent = NormalLatent(in_features=4, dim=3)
    q = latent.posterior(torch.randn(2, 4))
    torch.testing.assert_close(latent.kl(q), kl_divergence(q, latent.prior()))
