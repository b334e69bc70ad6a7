"""Learned priors, flow posteriors and two stochastic layers, checked with numbers: each flow's log-determinant
against autograd's Jacobian, the mixture priors' log p(z) against a direct mixture sum, and a linear-Gaussian
model whose log p(x) is known in closed form: with the exact posterior the ELBO is log p(x) at every sample,
and with a flow or with two layers the importance-weighted bound approaches log p(x) as k grows."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Categorical, Independent, MixtureSameFamily, MultivariateNormal, Normal

from tests.conftest import build_model, component
from vae_zoo.components import build
from vae_zoo.flows.flow import Flow
from vae_zoo.flows.posterior import FlowPosterior
from vae_zoo.models import VAE
from vae_zoo.priors.mixture import DiagonalGaussianMixture, mixture

DOUBLE = torch.float64


def flow_transforms(name: str, dim: int = 4, batch: int = 3):
    torch.manual_seed(0)
    flow = build(component("flow", name), Flow, "model.flow", latent_features=dim, in_features=5).double()
    for parameter in flow.parameters():  # away from the near-identity start, so every term matters
        nn.init.normal_(parameter, std=0.2)
    return flow.transforms(torch.randn(batch, 5, dtype=DOUBLE))


def block_log_determinants(function, z: torch.Tensor) -> torch.Tensor:
    """log |det| of the Jacobian of ``function`` at each row of ``z`` (rows map to rows)."""
    jacobian = torch.autograd.functional.jacobian(function, z)  # (B, D, B, D)
    return torch.stack([torch.linalg.slogdet(jacobian[i, :, i, :])[1] for i in range(len(z))])


@pytest.mark.parametrize("name", ["planar", "iaf"])
def test_each_flow_layers_log_determinant_is_its_jacobians(name):
    for transform in flow_transforms(name):
        z = torch.randn(3, 4, dtype=DOUBLE)
        torch.testing.assert_close(
            transform.log_abs_det_jacobian(z, transform(z)), block_log_determinants(transform._call, z)
        )


@pytest.mark.parametrize("name", ["planar", "iaf"])
def test_a_flow_posteriors_log_prob_at_its_own_sample_is_the_change_of_variables(name):
    transforms = flow_transforms(name)
    base = Independent(Normal(torch.randn(3, 4, dtype=DOUBLE), torch.rand(3, 4, dtype=DOUBLE) + 0.5), 1)
    q = FlowPosterior(base, transforms)

    def chain(z0):
        for transform in transforms:
            z0 = transform._call(z0)
        return z0

    z0 = base.sample()
    z = z0
    for transform in transforms:
        z = transform(z)  # the flow's own sample: each layer keeps its input
    expected = base.log_prob(z0) - block_log_determinants(chain, z0)
    torch.testing.assert_close(q.log_prob(z), expected)


def test_the_mixture_priors_log_density_is_the_mixture_sum():
    torch.manual_seed(1)
    model = build_model(prior=component("prior", "mog", components=3), latent_settings={"dim": 2})
    prior = model.model.prior
    z = torch.randn(7, 2)
    scales = F.softplus(prior.raw_scales) + 1e-4
    components = Normal(prior.means, scales).log_prob(z[:, None, :]).sum(-1)  # (7, K)
    direct = torch.logsumexp(prior.logits.log_softmax(-1) + components, dim=-1)
    torch.testing.assert_close(model.model.prior_distribution().log_prob(z), direct)


def test_the_vamp_priors_log_density_is_the_mean_of_the_pseudo_inputs_posteriors():
    torch.manual_seed(2)
    model = build_model(prior=component("prior", "vamp", components=4), latent_settings={"dim": 2})
    z = torch.randn(5, 2)
    pseudo = torch.sigmoid(model.model.prior.pseudo_inputs)
    per_input = torch.stack([model.model.posterior(u[None]).log_prob(z) for u in pseudo], dim=-1)  # (5, 4)
    direct = torch.logsumexp(per_input, dim=-1) - math.log(4)
    torch.testing.assert_close(model.model.prior_distribution().log_prob(z), direct)


SIGMA = 0.5
W = torch.tensor(
    [[1.0, 0.0], [0.0, 2.0], [1.0, 0.0], [0.0, -1.0]]
)  # orthogonal columns: a diagonal posterior
B = torch.tensor([0.2, -0.1, 0.3, 0.0])


def linear_gaussian(latent: str = "normal", flow: str = "none", **latent_settings) -> VAE:
    flow_settings = {"none": {}, "planar": {"layers": 2}, "iaf": {"layers": 2, "hidden": 16, "context": 8}}[
        flow
    ]
    """``x = W z1 + b + 0.5 eps`` on 2 x 2 images, with a linear encoder; ``z1`` 2-d."""
    model = VAE(
        encoder={"_target_": "vae_zoo.nets.mlp.MLPEncoder", "hidden": []},
        decoder={"_target_": "vae_zoo.nets.mlp.MLPDecoder", "hidden": []},
        latent=component("latent", latent, dim=2, **latent_settings),
        estimator=component("estimator", "pathwise"),
        likelihood=component("likelihood", "gaussian", scale="fixed", sigma=SIGMA),
        optimizer={"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3},
        flow=component("flow", flow, **flow_settings),
        input_shape=(1, 2, 2),
    ).double()
    decoder = model.model.decoder.net[-1]
    with torch.no_grad():
        decoder.weight.copy_(W)
        decoder.bias.copy_(B)
    return model


def exact_negative_log_likelihood(
    x: torch.Tensor, covariance_z1: torch.Tensor, mean_z1: torch.Tensor
) -> torch.Tensor:
    """``-log p(x)`` of ``x = W z1 + b + sigma eps`` with ``z1 ~ N(mean, covariance)``."""
    w = W.double()
    covariance = w @ covariance_z1 @ w.T + SIGMA**2 * torch.eye(4, dtype=DOUBLE)
    return -MultivariateNormal(w @ mean_z1 + B.double(), covariance).log_prob(x.flatten(1))


def set_posterior_head(model: VAE, covariance: torch.Tensor, mean: torch.Tensor) -> None:
    """Make q(z1|x) the exact posterior of z1 under the prior N(mean, covariance) (its diagonal, where the
    posterior covariance is not diagonal): precision ``C^-1 + W^T W / sigma^2``, mean
    ``Sigma (C^-1 m + W^T (x - b) / sigma^2)``, linear in x."""
    w, precision = W.double(), torch.linalg.inv(covariance)
    posterior_covariance = torch.linalg.inv(precision + w.T @ w / SIGMA**2)
    gain = posterior_covariance @ w.T / SIGMA**2
    head = model.model.latent.head
    with torch.no_grad():
        head.weight.zero_()
        head.weight[:2] = gain
        head.bias[:2] = posterior_covariance @ precision @ mean - gain @ B.double()
        head.bias[2:] = torch.log(torch.expm1(posterior_covariance.diagonal().sqrt() - 1e-5))  # softplus^-1


def closed_form_negative_elbo(model: VAE, x: torch.Tensor, q: Independent) -> torch.Tensor:
    """``-L[q]`` of ``linear_gaussian`` for a diagonal Normal ``q``, with ``E_q[-log p(x|z)]`` in closed form too:
    ``(|x - W m - b|^2 + sum_j v_j |W_j|^2) / 2 sigma^2 + 4 log(sigma sqrt(2 pi))`` plus the closed-form KL."""
    w, loc, variance = W.double(), q.base_dist.loc, q.base_dist.scale.square()
    residual = x.flatten(1) - loc @ w.T - B.double()
    expected_recon = (residual.square() + variance @ w.T.square()).sum(-1) / (2 * SIGMA**2) + 4 * (
        math.log(SIGMA) + 0.5 * math.log(2 * math.pi)
    )
    return expected_recon + model.model.kl(q)


def test_with_the_exact_posterior_the_elbo_is_log_p_x_at_every_sample():
    model = linear_gaussian()
    set_posterior_head(model, torch.eye(2, dtype=DOUBLE), torch.zeros(2, dtype=DOUBLE))  # diagonal: exact
    x = torch.randn(6, 1, 2, 2, dtype=DOUBLE)
    exact = exact_negative_log_likelihood(x, torch.eye(2, dtype=DOUBLE), torch.zeros(2, dtype=DOUBLE))
    for _ in range(5):  # every sample: log w = log p(x) exactly when q is the posterior
        z = model.model.posterior(x).sample()
        torch.testing.assert_close(-model.model.log_weights(x, model.model.posterior(x), z), exact)
    torch.testing.assert_close(closed_form_negative_elbo(model, x, model.model.posterior(x)), exact)


@pytest.mark.parametrize(("latent", "flow"), [("normal", "planar"), ("normal", "iaf"), ("two_layer", "none")])
def test_the_iw_bound_approaches_log_p_x_as_k_grows(latent, flow):
    torch.manual_seed(3)
    settings = {"top": 1, "hidden": []} if latent == "two_layer" else {}
    model = linear_gaussian(latent, flow, **settings)
    covariance, mean = torch.eye(2, dtype=DOUBLE), torch.zeros(2, dtype=DOUBLE)
    if latent == "two_layer":  # p(z1|z2) = N(A z2 + a, diag s^2): z1 ~ N(a, A A^T + diag s^2)
        down = model.model.latent.down[-1]
        with torch.no_grad():
            down.weight.copy_(torch.tensor([[0.8], [-0.5], [0.0], [0.0]], dtype=DOUBLE))
            down.bias.copy_(torch.tensor([0.1, 0.2, 0.0, 0.5], dtype=DOUBLE))
        a = down.weight[:2, 0]
        s = F.softplus(down.bias[2:]) + 1e-5
        covariance, mean = torch.outer(a, a) + torch.diag(s.square()), down.bias[:2].detach()
    set_posterior_head(model, covariance.detach(), mean)  # a good proposal, which the flow then perturbs
    x = torch.randn(200, 1, 2, 2, dtype=DOUBLE)  # the gaps are means over 200 images
    exact = exact_negative_log_likelihood(x, covariance.detach(), mean).mean()
    with torch.no_grad():
        gaps = [
            (model.model.importance_weighted_nll(x, k).mean() - exact).item() for k in (1, 10, 100, 10_000)
        ]
    assert all(gap > -0.02 for gap in gaps)  # a bound (up to Monte Carlo noise)
    assert gaps[0] > gaps[1] > gaps[2] > gaps[3] and gaps[3] < 0.1, gaps


def test_the_fast_gaussian_mixture_density_matches_torchs_broadcast_where_the_square_cancels():
    """Tight components far from the origin: the expanded square in ``DiagonalGaussianMixture`` subtracts
    numbers near (z / s)^2 ~ 1e6, which float64 keeps exact to far below a micro-nat."""
    torch.manual_seed(3)
    loc = 5 + torch.randn(50, 8, dtype=torch.float64)
    scale = 0.01 + 0.05 * torch.rand(50, 8, dtype=torch.float64)
    weights = Categorical(logits=torch.randn(50, dtype=torch.float64))
    components = Independent(Normal(loc, scale), 1)
    z = (loc[torch.randint(50, (64,))] + 0.03 * torch.randn(64, 8, dtype=torch.float64)).float()
    fast = mixture(weights, components)
    assert isinstance(fast, DiagonalGaussianMixture)
    expected = MixtureSameFamily(weights, components).log_prob(z.double())
    torch.testing.assert_close(fast.log_prob(z).double(), expected, rtol=1e-6, atol=1e-4)
