"""``objective.groups``: MIWAE (Rainforth et al. 2018), the mean of M independent k-sample bounds. Its loss is the
mean of its groups' bounds; its encoder gradient's mean is IWAE_k's with a quarter of the variance at M = 4 (and
IWAE_8's mean is not IWAE_2's, which the same test sees); for the same 16 samples per image its encoder gradient's
signal-to-noise ratio is above IWAE_16's; and it is refused in one line where it cannot train. With ``dreg`` each
group reweights by its own weights: test_doubly_reparameterized.py."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import build_model, mnist_like, refusal
from tests.test_doubly_reparameterized import _encoder_side, _flat_gradient
from vae_zoo.errors import ConfigError
from vae_zoo.objectives.iwae import IWAE, negative_log_mean_exp


def _miwae(k: int, groups: int, gradient: str = "total"):
    torch.manual_seed(0)
    return build_model(
        objective="iwae",
        objective_settings={"k": k, "groups": groups, "gradient": gradient},
        latent_settings={"dim": 4},
    )


def test_its_loss_is_the_mean_of_its_groups_bounds():
    vae, x = _miwae(4, 3), mnist_like(10, seed=0)
    torch.manual_seed(1)
    loss, terms = vae.objective(vae.model, x)
    torch.manual_seed(1)
    q = vae.model.posterior(x)
    z = vae.model.training_sample(q, (3, 4)).value
    log_w = vae.model.log_weights(x, q, z)  # (groups, k, images)
    groups = [negative_log_mean_exp(log_w[m]).mean() for m in range(3)]
    torch.testing.assert_close(loss, torch.stack(groups).mean())
    assert terms["iwae_4"] == pytest.approx(loss.item()) and "iwae_12" not in terms


def _encoder_gradients(k: int, groups: int, draws: int = 200) -> torch.Tensor:
    """``draws`` encoder-side gradients of the loss on one image, ``(draws, parameters)``, float64."""
    vae, x = _miwae(k, groups), mnist_like(1, seed=1)
    torch.manual_seed(2)
    return torch.stack(
        [_flat_gradient(vae.objective(vae.model, x)[0], _encoder_side(vae)) for _ in range(draws)]
    ).double()


def _z_scores(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per coordinate reached by both, the difference of the two samples' means in standard errors."""
    se = (a.var(0) / len(a) + b.var(0) / len(b)).sqrt()
    reached = (a.var(0) > 0) & (b.var(0) > 0)
    return ((a.mean(0) - b.mean(0)) / se)[reached]


def test_its_mean_gradient_is_iwae_ks_with_an_mth_of_the_variance():
    """200 draws each on one image at initialisation. MIWAE(k = 2, M = 4) against IWAE_2: every coordinate's mean
    within 4.5 standard errors (measured: at most 1.6, mean square 0.97), the total variance a quarter of IWAE_2's
    (measured 0.27). Negative control: IWAE_8's mean against IWAE_2's, a different bound's gradient, has a mean
    square of 11.9 standard errors squared."""
    iwae_2, miwae, iwae_8 = _encoder_gradients(2, 1), _encoder_gradients(2, 4), _encoder_gradients(8, 1)
    same = _z_scores(miwae, iwae_2)
    assert len(same) > 1000 and same.abs().max() < 4.5 and same.square().mean() < 1.5
    assert 0.18 < miwae.var(0).sum() / iwae_2.var(0).sum() < 0.35
    assert _z_scores(iwae_8, iwae_2).square().mean() > 5


def test_for_the_same_samples_its_encoder_signal_to_noise_ratio_is_above_iwaes():
    """Rainforth et al.: the IWAE encoder gradient's signal-to-noise ratio (|mean| / sd per coordinate) falls as k
    grows. With 16 samples per image, MIWAE(k = 4, M = 4)'s mean ratio was 2.6 times IWAE_16's (1.07 against
    0.42); asserted above 1.5 times."""
    ratios = []
    for k, groups in ((16, 1), (4, 4)):
        draws = _encoder_gradients(k, groups)
        reached = draws.var(0) > 0
        ratios.append((draws.mean(0).abs() / draws.std(0))[reached].mean())
    assert ratios[1] > 1.5 * ratios[0]


def test_where_it_cannot_train_it_is_refused_in_one_line():
    groups = {"objective": "iwae", "objective_settings": {"k": 2, "groups": 3}}
    assert refusal(estimator="score_function", **groups) == (
        "estimator=score_function does not pair with objective=iwae (k=2, groups=3): its gradient flows through the "
        "training sample, which needs a reparameterized sample (explicit or implicit); choose one of: "
        "estimator=implicit, estimator=pathwise"
    )
    assert refusal(latent="bernoulli", estimator="disarm", **groups).endswith(
        "no estimator of this latent is reparameterized: set objective.groups=1"
    )
    with pytest.raises(ConfigError, match=r"^objective.k=5 and objective.groups=0 must be >= 1$"):
        IWAE(k=5, groups=0)
