"""``objective.partitioned``: PIWAE (Rainforth et al. 2018). On the same ``M x k`` samples, the generative model's
gradient (decoder and learned prior) is that of the pooled bound ``L_Mk`` and the encoder's that of MIWAE's mean of
the ``M`` groups' bounds, with its own gradient, with DReG's or mixed with the ELBO (CIWAE); the loss's value is
the pooled bound's; and it is refused in one line where it cannot train."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import build_model, component, mnist_like, refusal
from tests.test_doubly_reparameterized import _encoder_side, _flat_gradient
from vae_zoo.errors import ConfigError
from vae_zoo.objectives.doubly_reparameterized import parameters_stopped
from vae_zoo.objectives.iwae import IWAE, negative_log_mean_exp

GROUPS, K = 3, 4


def _piwae(partitioned: bool, gradient: str = "total", elbo_weight: float = 0.0):
    torch.manual_seed(0)
    settings = {"k": K, "groups": GROUPS, "gradient": gradient, "elbo_weight": elbo_weight}
    return build_model(
        objective="iwae",
        objective_settings={**settings, "partitioned": partitioned},
        latent_settings={"dim": 4},
        prior=component("prior", "learned_normal"),
    )


def _generative_side(vae) -> list[torch.nn.Parameter]:
    return [*vae.model.decoder.parameters(), *vae.model.prior.parameters()]


def _gradients(vae, loss: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return _flat_gradient(loss, _encoder_side(vae)), _flat_gradient(loss, _generative_side(vae))


@pytest.mark.parametrize(
    ("gradient", "elbo_weight"), [("total", 0.0), ("dreg", 0.0), ("total", 0.5), ("dreg", 0.5)]
)
def test_the_decoder_gets_the_pooled_bounds_gradient_and_the_encoder_the_groups(gradient, elbo_weight):
    """Twelve samples per image in three groups of four, a learned prior: PIWAE's encoder gradient is that of the
    groups' mean bound (MIWAE's; with ``dreg``, each group's ``sum_i w~_i^2 grad log w_i``; with an ELBO weight,
    CIWAE's mix in each group), its decoder's and prior's that of the bound of all twelve samples."""
    vae, x = _piwae(True, gradient, elbo_weight), mnist_like(10, seed=0)
    torch.manual_seed(1)
    loss, terms = vae.objective(vae.model, x)
    encoder, generative = _gradients(vae, loss)

    torch.manual_seed(1)
    q = vae.model.posterior(x)
    z = vae.model.training_sample(q, (GROUPS, K)).value
    log_w = vae.model.log_weights(x, q, z)  # (groups, k, images)
    pooled = vae.objective.negative_bound(log_w.flatten(0, 1)).mean()
    if gradient == "total":
        groups = vae.objective.negative_bound(log_w).mean()
    else:  # DReG: q's parameters held fixed, each sample's path weighted by (1 - beta) w~^2 + beta / k
        fixed_log_w = vae.model.log_weights(x, parameters_stopped(q), z)
        weights = torch.softmax(fixed_log_w, dim=-2).detach()
        path = (1 - elbo_weight) * weights**2 + elbo_weight / K
        groups = -(path * fixed_log_w).sum(-2).mean()
    reference_encoder = _flat_gradient(groups, _encoder_side(vae))
    reference_generative = _flat_gradient(pooled, _generative_side(vae))
    torch.testing.assert_close(
        encoder, reference_encoder, rtol=1e-4, atol=1e-5 * reference_encoder.abs().max()
    )
    torch.testing.assert_close(generative, reference_generative, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(loss, pooled)  # the value is the generative model's bound
    torch.testing.assert_close(terms[f"iwae_{GROUPS * K}"], negative_log_mean_exp(log_w.flatten(0, 1)).mean())
    torch.testing.assert_close(terms[f"iwae_{K}"], negative_log_mean_exp(log_w).mean())


def test_its_gradients_differ_from_miwaes_only_in_the_generative_model():
    """Against MIWAE on the same samples (negative control of the test above): the encoder gradients are equal and
    the decoder's are not, since MIWAE trains the decoder on the groups' looser bound."""
    gradients = {}
    for partitioned in (False, True):
        vae = _piwae(partitioned)
        torch.manual_seed(1)
        gradients[partitioned] = _gradients(vae, vae.objective(vae.model, mnist_like(10, seed=0))[0])
    scale = gradients[False][0].abs().max()
    torch.testing.assert_close(gradients[True][0], gradients[False][0], rtol=1e-4, atol=1e-5 * scale)
    assert (gradients[True][1] - gradients[False][1]).abs().max() > 0.01 * gradients[False][1].abs().max()


def test_evaluation_draws_no_gradient_and_reports_the_same_terms():
    vae, x = _piwae(True), mnist_like(6, seed=2)
    with torch.no_grad():
        torch.manual_seed(1)
        loss, terms = vae.objective(vae.model, x)
    torch.manual_seed(1)
    trained_loss, trained_terms = vae.objective(vae.model, x)
    assert not loss.requires_grad and torch.equal(loss, trained_loss.detach())
    assert terms.keys() == trained_terms.keys() == {f"iwae_{K}", "elbo", f"iwae_{GROUPS * K}"}


def test_where_it_cannot_train_it_is_refused_in_one_line():
    with pytest.raises(
        ConfigError, match=r"^objective.partitioned=true trains the encoder .* set objective.groups > 1$"
    ):
        IWAE(k=5, partitioned=True)
    partitioned = {"objective": "iwae", "objective_settings": {"k": 2, "groups": 3, "partitioned": True}}
    assert refusal(estimator="score_function", **partitioned).startswith(
        "estimator=score_function does not pair with objective=iwae (k=2, groups=3, partitioned): its gradient "
        "flows through the training sample"
    )
    assert refusal(flow=component("flow", "planar"), **partitioned).endswith(
        "objective.partitioned=false objective.groups=1"
    )
