"""The importance-weighted bound against the ELBO, for every model, on real MNIST."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import build_model
from vae_zoo import probabilistic_model
from vae_zoo.data import MNISTDataModule

MODELS = {
    "gaussian": {"latent": "normal", "estimator": "pathwise", "latent_settings": {"dim": 16}},
    "categorical": {
        "latent": "categorical",
        "estimator": "gumbel_softmax",
        "latent_settings": {"n": 10, "k": 10},
    },
}


def _briefly_trained_model(data_dir, name, steps=150):
    torch.manual_seed(0)
    dm = MNISTDataModule(data_dir)
    dm.setup()
    model = build_model(**MODELS[name], hidden=[256], iw_chunk=30)
    optimizer = model.configure_optimizers()
    for _, x in zip(range(steps), dm.train_dataloader()):
        recon, kl = model.model.negative_elbo_terms(x, model.model.estimator.sample)
        optimizer.zero_grad()
        (recon + kl).mean().backward()
        optimizer.step()
    return model, next(iter(dm.test_dataloader()))


@pytest.mark.parametrize("name", MODELS)
def test_importance_weighted_bound_is_never_worse_than_the_elbo_and_tightens_with_k(name, data_dir):
    model, x = _briefly_trained_model(data_dir, name)
    torch.manual_seed(2)
    with torch.no_grad():
        recon, kl = model.model.negative_elbo_terms(x, lambda q: q.sample())
        negative_elbo = (recon + kl).mean().item()
        bounds = {k: model.model.importance_weighted_nll(x, k).mean().item() for k in (1, 10, 100, 1000)}
    # k = 1 is a one-sample estimate of the negative ELBO: equal up to Monte-Carlo noise
    assert bounds[1] == pytest.approx(negative_elbo, abs=1.0)
    # each larger k is a tighter (smaller) bound on -log p(x); 500 images make the gaps far exceed the noise
    assert negative_elbo > bounds[10] > bounds[100] > bounds[1000]
    assert negative_elbo - bounds[1000] > 2.0


def test_importance_weighted_bound_is_independent_of_the_chunk_size(data_dir):
    model, x = _briefly_trained_model(data_dir, "gaussian", steps=20)
    x = x[:50]
    results = []
    for chunk in (1, 7, 64):
        model.hparams.iw_chunk = chunk
        torch.manual_seed(3)
        results.append(model.model.importance_weighted_nll(x, 64))
    # the samples differ with the chunking, so agreement is statistical: within 0.5 nats per image mean
    assert max(r.mean().item() for r in results) - min(r.mean().item() for r in results) < 0.5


def test_the_iw_bound_draws_fewer_samples_per_chunk_where_the_likelihood_has_many_maps(monkeypatch):
    """A mixture likelihood emits 15 maps per pixel: the chunk shrinks so the decoder's output for it stays
    under IW_CHUNK_ELEMENTS, and every one of the k samples is still used."""
    model = build_model(likelihood="discretized_logistic", iw_chunk=100)
    monkeypatch.setitem(probabilistic_model.IW_CHUNK_ELEMENTS, "cpu", 8 * 15 * 784 * 7)
    chunks = []
    log_weights = model.model.log_weights
    monkeypatch.setattr(
        model.model, "log_weights", lambda x, q, z, p: chunks.append(len(z)) or log_weights(x, q, z, p)
    )
    x = torch.randint(0, 256, (8, 1, 28, 28)).float() / 255
    assert torch.isfinite(model.model.importance_weighted_nll(x, 30)).all()
    assert max(chunks) == 7 and sum(chunks) == 30


def test_on_the_cpu_a_chunk_of_the_iw_bound_stays_cache_sized():
    """500 MNIST images with a Bernoulli decoder: 392,000 outputs per sample, so 5 samples per chunk on the
    CPU (2^21 elements) rather than iw_chunk = 100 (2^26 elsewhere)."""
    model = build_model(iw_chunk=100)
    assert model.model.iw_chunk_size(torch.zeros(500, 1, 28, 28)) == 5
    assert model.model.iw_chunk_size(torch.zeros(50, 1, 28, 28)) == 53
