"""``objective.free_bits`` against its formula (Kingma et al. 2016): the KL trained as ``sum_j max(lambda, mean_x
KL_j)`` over the latent units, the reported terms the true ELBO's; a unit below lambda gets no gradient from the
KL; refused in one line where there is no closed-form KL per unit."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import build_model, flat_gradient, refusal
from tests.test_packing_conformance import NETS, SHORT
from vae_zoo.data.tensor_batches import images_and_labels
from vae_zoo.packed_batch import per_image_copies
from vae_zoo.packing.train_pack import PackJob, build_pack


def _batch(n: int = 16) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0)).bernoulli()


def _model(free_bits: float, latent: str = "normal", estimator: str = "pathwise"):
    torch.manual_seed(0)
    return build_model(latent=latent, estimator=estimator, objective_settings={"free_bits": free_bits})


@pytest.mark.parametrize(
    ("latent", "estimator"),
    [("normal", "pathwise"), ("categorical", "gumbel_softmax"), ("gamma", "implicit")],
)
def test_the_loss_is_the_reconstruction_plus_each_units_kl_held_up_to_lambda(latent, estimator):
    x = _batch()
    plain = _model(0.0, latent, estimator).model
    with torch.no_grad():
        kl_means = plain.kl_per_unit(plain.posterior(x)).mean(0)
    free_bits = kl_means.median().item()  # about half the units below, half above
    vae = _model(free_bits, latent, estimator)
    torch.manual_seed(1)
    loss, terms = vae.objective(vae.model, x)
    ours = flat_gradient(vae, loss)

    torch.manual_seed(1)
    q = vae.model.posterior(x)
    z = vae.model.training_sample(q).value
    recon, kl_units = vae.model.nll(x, z), vae.model.kl_per_unit(q)
    reference = recon.mean() + kl_units.mean(0).clamp(min=free_bits).sum()
    torch.testing.assert_close(loss, reference)
    torch.testing.assert_close(ours, flat_gradient(vae, reference))
    torch.testing.assert_close(kl_units.sum(-1), vae.model.kl(q))
    torch.testing.assert_close(terms["kl"], vae.model.kl(q).mean().detach())  # reported: the true KL
    assert 0 < (kl_units.mean(0) < free_bits).sum() < kl_units.shape[-1]


def test_units_below_lambda_get_no_gradient_from_the_kl():
    """With lambda above every unit's KL the loss trains the reconstruction alone (an autoencoder with noise); with
    lambda below every unit's it is the ELBO's."""
    x, gradients = _batch(), {}
    for name, free_bits in (("everything_free", 1e6), ("nothing_free", 1e-12), ("elbo", 0.0)):
        vae = _model(free_bits)
        torch.manual_seed(2)
        loss, _terms = vae.objective(vae.model, x)
        gradients[name] = flat_gradient(vae, loss)
        if name == "everything_free":
            torch.manual_seed(2)
            q = vae.model.posterior(x)
            recon = vae.model.nll(x, vae.model.training_sample(q).value).mean()
            torch.testing.assert_close(gradients[name], flat_gradient(vae, recon))
            n_units = vae.model.kl_per_unit(q).shape[-1]
            torch.testing.assert_close(loss, recon + 1e6 * n_units)
    torch.testing.assert_close(gradients["nothing_free"], gradients["elbo"], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(gradients["everything_free"], gradients["elbo"])


def test_each_packed_model_frees_its_own_units_by_its_own_images(make_cfg):
    """In a pack of two (seeds 0 and 1), each model's units are held up to lambda by the mean KL over its own images:
    each model's free-bits KL is its unpacked run's on those images, with lambda chosen so that some unit is free in
    one model and charged in the other (a mask over the whole packed batch fails it)."""
    cfgs = [make_cfg(*NETS, *SHORT, "objective.free_bits=0.5", f"seed={seed}") for seed in (0, 1)]
    datamodule, packed = build_pack([PackJob(cfg) for cfg in cfgs])
    datamodule.setup("fit")
    x, _ = images_and_labels(next(iter(datamodule.train_dataloader())))
    rows = len(x) // 2
    with torch.no_grad(), per_image_copies(packed.model, rows):
        kl_units = packed.model.kl_per_unit(packed.model.posterior(x))
        means = kl_units.unflatten(0, (2, rows)).mean(1)
        between = (means[0] - means[1]).abs().argmax()  # the unit whose two models' means differ most
        free_bits = means[:, between].mean().item()
        for objective in (packed.objective, *(run.objective for run in packed.runs)):
            objective.free_bits = free_bits
        packed_kl = packed.objective.free_bits_kl(packed.model, kl_units)
        for n, run in enumerate(packed.runs):
            own = slice(n * rows, (n + 1) * rows)
            alone = run.objective.free_bits_kl(run.model, run.model.kl_per_unit(run.model.posterior(x[own])))
            torch.testing.assert_close(packed_kl[own], alone, rtol=1e-5, atol=1e-5)
    assert (means[:, between] > free_bits).tolist() in ([True, False], [False, True])
    # each model its own lambda (jobs whose free bits differ pack): none for model 0, every unit free for model 1
    packed.objective.free_bits = torch.tensor([0.0, 1e6])
    with torch.no_grad(), per_image_copies(packed.model, rows):
        packed_kl = packed.objective.free_bits_kl(packed.model, kl_units)
    torch.testing.assert_close(packed_kl[:rows], kl_units[:rows].sum(-1))
    assert packed_kl[rows:].tolist() == [1e6 * kl_units.shape[-1]] * rows


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"prior": {"_target_": "vae_zoo.priors.mog.MixtureOfGaussiansPrior"}},
            (
                "objective.free_bits=0.5 needs the closed-form KL of each latent unit, which this model's prior, flow or "
                "latent layers lack -- set objective.free_bits=0"
            ),
        ),
    ],
)
def test_a_model_without_a_closed_form_kl_per_unit_is_refused_in_one_line(overrides, message):
    assert refusal(objective_settings={"free_bits": 0.5}, **overrides) == message


def test_a_users_family_without_units_is_refused_at_start_up_and_trains_without_free_bits():
    """A full-covariance Gaussian has a closed-form KL but no units to hold up to lambda."""
    family = {"_target_": "tests.fixtures.full_covariance_latent.FullCovarianceNormal", "dim": 2}
    assert refusal(latent_settings=family, objective_settings={"free_bits": 0.5}) == (
        "FullCovarianceNormal's posterior and prior are not Independent over latent units, which "
        "objective.free_bits needs: set objective.free_bits=0"
    )
    vae = build_model(latent_settings=family)
    loss, terms = vae.objective(vae.model, _batch())
    loss.backward()
    assert vae.model.closed_form_kl and torch.isfinite(loss) and terms["kl"] > 0


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"free_bits": -1}, r"objective.free_bits=-1 must be >= 0 \(nats per latent unit; 0: off\)"),
        (
            {"free_bits": 0.5, "kl": "mc"},
            r"needs the closed-form KL of each latent unit, and objective.kl=mc trains",
        ),
        (
            {"free_bits": 0.5, "gradient": "dreg"},
            r"and objective.gradient=dreg \(the one-sample KL\) trains another",
        ),
    ],
)
def test_its_settings_are_checked_in_one_line(settings, message):
    with pytest.raises(Exception, match=message):
        build_model(objective_settings=settings)
