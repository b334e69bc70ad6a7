"""``objective.gradient=dreg`` against its formulas: the doubly reparameterized gradient of Tucker et al. (2019) is
``sum_i w~_i^2 d log w_i/dz_i dz_i/dphi`` for the encoder and IWAE's own gradient for the decoder; its mean is the
IWAE gradient's (dropping the score term alone is biased, and the same test sees it); with one sample it sticks
the landing (zero at the exact posterior); it cuts the encoder gradient's variance; and it is refused in one
line where it cannot work."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Independent, Normal

from tests.conftest import build_model, refusal
from vae_zoo.objectives.doubly_reparameterized import parameters_stopped, reweight_sample_gradient
from vae_zoo.objectives.iwae import negative_log_mean_exp


def _batch(n: int = 12) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0)).bernoulli()


def _encoder_side(vae) -> list[torch.nn.Parameter]:
    return [*vae.model.encoder.parameters(), *vae.model.latent.head.parameters()]


def _flat_gradient(loss: torch.Tensor, params: list[torch.nn.Parameter]) -> torch.Tensor:
    return torch.cat([g.flatten() for g in torch.autograd.grad(loss, params, retain_graph=True)])


def _iwae(k: int, gradient: str, seed: int = 0, groups: int = 1, **settings):
    torch.manual_seed(seed)
    objective = {"k": k, "gradient": gradient, "groups": groups}
    return build_model(objective="iwae", objective_settings=objective, **settings)


@pytest.mark.parametrize("groups", [1, 2])
def test_the_encoder_gets_the_squared_weights_and_the_decoder_the_iwae_gradient(groups):
    """Six samples per image, in one group or (MIWAE) two of three, each group's weights ``w~`` normalized within
    it: the encoder's gradient is the mean over groups of ``sum_i w~_i^2 grad log w_i``, the decoder's IWAE's."""
    k = 6 // groups
    vae, x = _iwae(k, "dreg", groups=groups, latent_settings={"dim": 4}), _batch()
    torch.manual_seed(1)
    loss, terms = vae.objective(vae.model, x)
    encoder, decoder = _encoder_side(vae), list(vae.model.decoder.parameters())
    ours = _flat_gradient(loss, encoder + decoder)

    torch.manual_seed(1)
    q = vae.model.posterior(x)
    z = vae.model.training_sample(q, (k,) if groups == 1 else (groups, k)).value
    fixed = Independent(Normal(q.base_dist.loc.detach(), q.base_dist.scale.detach()), 1)
    log_w = vae.model.log_weights(x, fixed, z)  # (k, B) or (groups, k, B)
    weights = torch.softmax(log_w, dim=-2).detach()
    reference = torch.cat(
        [
            _flat_gradient(-(weights**2 * log_w).sum(-2).mean(), encoder),
            _flat_gradient(-(weights * log_w).sum(-2).mean(), decoder),
        ]
    )
    torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-5 * reference.abs().max().item())
    torch.testing.assert_close(loss, negative_log_mean_exp(log_w).mean())  # the value is the bound's
    assert terms[f"iwae_{k}"] == pytest.approx(loss.item())


def test_the_decoder_gradient_is_the_iwae_gradient_of_the_same_samples():
    x, gradients = _batch(), []
    for gradient in ("total", "dreg"):
        vae = _iwae(5, gradient)
        torch.manual_seed(2)
        loss, _ = vae.objective(vae.model, x)
        gradients.append(_flat_gradient(loss, list(vae.model.decoder.parameters())))
    torch.testing.assert_close(gradients[1], gradients[0])


def _mean_gradient(vae, image: torch.Tensor, variant: str, batches: int, copies: int, k: int):
    """The encoder-side gradient of ``variant`` on ``copies`` copies of one image (independent draws, averaged by
    the batch mean), ``batches`` times: its mean and standard error per coordinate."""
    x, params, rows = image.expand(copies, *image.shape[1:]), _encoder_side(vae), []
    for _ in range(batches):
        if variant == "score_term_dropped":  # sticking the landing applied to k > 1: no reweighting
            q = vae.model.posterior(x)
            z = vae.model.training_sample(q, (k,)).value
            loss = negative_log_mean_exp(vae.model.log_weights(x, parameters_stopped(q), z)).mean()
        else:
            loss, _ = vae.objective(vae.model, x)
        rows.append(_flat_gradient(loss, params).double())
    rows = torch.stack(rows)
    return rows.mean(0), rows.std(0) / math.sqrt(batches)


def test_its_mean_is_the_iwae_gradients_and_dropping_the_score_term_alone_is_biased():
    """Over 40 x 500 independent draws on one image at k = 5, each coordinate of the encoder gradient's mean (those
    the image reaches) as a z-score against the IWAE gradient's mean: DReG's all lie within 4 standard errors
    (measured: at most 0.86, mean square 0.51), while dropping the score term without reweighting (sticking the
    landing applied to k > 1, biased: Tucker et al. 2019, Sec. 3) lies 126 standard errors away."""
    image, k, results = _batch(1), 5, {}
    for seed, variant in enumerate(("total", "dreg", "score_term_dropped")):
        vae = _iwae(k, "total" if variant == "total" else "dreg", hidden=(8,), latent_settings={"dim": 2})
        torch.manual_seed(3 + seed)
        results[variant] = _mean_gradient(vae, image, variant, batches=40, copies=500, k=k)
    (total, total_se) = results["total"]
    scores = {}
    for variant in ("dreg", "score_term_dropped"):
        mean, se = results[variant]
        reached = (se > 0) & (total_se > 0)
        scores[variant] = ((mean - total) / (se.square() + total_se.square()).sqrt())[reached]
    assert len(scores["dreg"]) > 1000
    assert scores["dreg"].abs().max() < 4 and scores["dreg"].square().mean() < 1.5
    assert scores["score_term_dropped"].abs().max() > 20


def test_it_cuts_the_encoder_gradients_variance_at_large_k():
    """Rainforth et al. (2018): the IWAE encoder gradient's signal-to-noise ratio falls as k grows, DReG's does
    not. At k = 50 on 64 images, 100 draws, at initialisation (where q is still far from the posterior), DReG's
    total variance was 0.36 of IWAE's; asserted below a half."""
    x, variances = _batch(64), {}
    for gradient in ("total", "dreg"):
        vae = _iwae(50, gradient, latent_settings={"dim": 4})
        torch.manual_seed(4)
        draws = torch.stack(
            [_flat_gradient(vae.objective(vae.model, x)[0], _encoder_side(vae)) for _ in range(100)]
        )
        variances[gradient] = draws.var(0).sum().item()
    assert variances["dreg"] < variances["total"] / 2


@pytest.mark.parametrize("k", [1, 5])
def test_it_is_zero_for_every_sample_where_q_is_the_exact_posterior(k):
    """Sticking the landing (Roeder et al. 2017; k = 1) and DReG: with p(z) = N(0, I), p(x|z) = N(w z, s^2 I)
    and q the exact posterior, log w = log p(x) at every z, so every sample's gradient is 0; IWAE's is not."""
    torch.manual_seed(5)
    w, s, x = torch.tensor([2.0, 0.5], dtype=torch.float64), 0.7, torch.randn(3, 2, dtype=torch.float64)
    precision = 1 + w**2 / s**2
    for gradient, expect_zero in (("dreg", True), ("total", False)):
        loc = (w / s**2 * x / precision).requires_grad_()
        log_scale = (-0.5 * precision.log()).expand(3, 2).clone().requires_grad_()
        q = Independent(Normal(loc, log_scale.exp()), 1)
        z = q.rsample((k,))
        log_q = (parameters_stopped(q) if gradient == "dreg" else q).log_prob(z)
        log_joint = Independent(Normal(w * z, s), 1).log_prob(x) + Independent(
            Normal(torch.zeros(2, dtype=torch.float64), 1.0), 1
        ).log_prob(z).expand_as(log_q)
        log_w = log_joint - log_q
        if gradient == "dreg":
            reweight_sample_gradient(z, log_w)
        grads = torch.cat(
            [g.flatten() for g in torch.autograd.grad(negative_log_mean_exp(log_w).sum(), (loc, log_scale))]
        )
        assert (grads.abs().max() < 1e-12) == expect_zero, (gradient, grads)


def test_the_elbo_with_dreg_is_sticking_the_landing_a_one_sample_kl_without_its_score_term():
    x = _batch()
    torch.manual_seed(0)
    vae = build_model(objective="elbo", objective_settings={"gradient": "dreg"}, latent_settings={"dim": 4})
    assert vae.objective.kl == "mc"  # auto chooses the one-sample KL
    torch.manual_seed(6)
    loss, terms = vae.objective(vae.model, x)
    ours = _flat_gradient(loss, list(vae.model.parameters()))
    torch.manual_seed(6)
    q = vae.model.posterior(x)
    z = vae.model.training_sample(q).value
    reference_loss = (vae.model.nll(x, z) + vae.model.kl_estimate(parameters_stopped(q), z)).mean()
    torch.testing.assert_close(ours, _flat_gradient(reference_loss, list(vae.model.parameters())))
    assert terms["elbo"] == pytest.approx(loss.item())


def test_parameters_stopped_keeps_the_density_and_passes_gradient_to_the_point_alone():
    for name in (
        "normal",
        "gamma",
        "beta",
        "von_mises",
        "truncated_normal",
        "dirichlet",
        "von_mises_fisher",
        "power_spherical",
    ):
        vae = build_model(latent=name, estimator="implicit")
        q = vae.model.posterior(_batch(4))
        z = q.sample().requires_grad_()
        stopped = parameters_stopped(q).log_prob(z)
        torch.testing.assert_close(stopped, q.log_prob(z))
        (point,) = torch.autograd.grad(stopped.sum(), z, allow_unused=True)
        assert point is not None and not any(
            g is not None for g in torch.autograd.grad(stopped.sum(), _encoder_side(vae), allow_unused=True)
        ), name


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"latent": "two_layer"},
            (
                "objective=iwae (k=3, gradient=dreg) needs parameters that are tensors (to evaluate log q(z) with them "
                "held fixed), which latent=two_layer's GaussianChain posteriors lack -- set objective.gradient=total"
            ),
        ),
        (
            {"estimator": "score_function"},
            (
                "estimator=score_function does not pair with objective=iwae (k=3, gradient=dreg): its gradient flows "
                "through the training sample, which needs a reparameterized sample (explicit or implicit); "
                "choose one of: estimator=implicit, estimator=pathwise"
            ),
        ),
        (
            {"latent": "categorical", "estimator": "straight_through"},
            (
                "estimator=straight_through does not pair with objective=iwae (k=3, gradient=dreg): its gradient flows "
                "through the training sample, which needs a reparameterized sample (explicit or implicit); no "
                "estimator of this latent is reparameterized: set objective.gradient=total"
            ),
        ),
    ],
)
def test_a_model_it_cannot_train_is_refused_in_one_line(settings, message):
    assert refusal(objective="iwae", objective_settings={"k": 3, "gradient": "dreg"}, **settings) == message


def test_its_settings_are_checked_in_one_line():
    with pytest.raises(Exception, match=r"objective.gradient='drag' is not one of total, dreg"):
        build_model(objective="iwae", objective_settings={"gradient": "drag"})
    with pytest.raises(
        Exception, match=r"objective.gradient=dreg drops the score term .* set objective.kl=mc"
    ):
        build_model(objective="elbo", objective_settings={"gradient": "dreg", "kl": "analytic"})
