"""Estimators keep nothing between ``draw`` and ``surrogate``: what the surrogate needs travels with the draw,
and running statistics move only in ``update_statistics``, after the surrogate and outside its graph."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from tests.conftest import build_model
from vae_zoo.config_groups import options
from vae_zoo.estimators import Cost
from vae_zoo.estimators.estimator import surrogate_and_statistics

DISCRETE = (
    "arm",
    "disarm",
    "rebar",
    "relax",
    "gumbel_rao",
    "gumbel_softmax",
    "straight_through",
    "reinmax",
    "reinforce_loo",
)
OBJECTIVE = {"vimco": ("iwae", {"k": 3})}


def built(name: str):
    latent = "bernoulli" if name in DISCRETE or name in ("nvil", "vimco") else "normal"
    objective, settings = OBJECTIVE.get(name, ("elbo", {}))
    return build_model(latent, name, objective, latent_settings={"dim": 6}, objective_settings=settings)


def surrogate_gradient(model, x, draw, q, seed: int) -> Tensor | None:
    """The gradient of the surrogate for ``draw`` with respect to the encoder's first layer (None: no surrogate)."""
    torch.manual_seed(seed)  # REBAR and RELAX draw their conditional noise inside the surrogate
    value = model.nll(x, draw.value).detach()
    cost = Cost(value, lambda z: model.nll(x, z), x, -value)  # -value: the per-sample log w VIMCO reads
    term = model.estimator.surrogate(q, draw, cost)
    if term is None:
        return None
    weight = next(model.encoder.parameters())
    (grad,) = torch.autograd.grad(term.sum(), weight, retain_graph=True, allow_unused=True)
    return grad


@pytest.mark.parametrize("name", sorted(options("estimator")))
def test_a_surrogate_reads_its_own_draw_whatever_was_drawn_since(name):
    torch.manual_seed(0)
    vae = built(name)
    vae.eval()  # statistics stay put: only the draw could differ
    model, x = vae.model, torch.rand(8, 1, 28, 28).bernoulli()
    q = model.posterior(x)
    shape = (3,) if name == "vimco" else ()
    first = model.training_sample(q, shape)
    alone = surrogate_gradient(model, x, first, q, seed=1)
    model.training_sample(q, shape)  # a second draw in between
    again = surrogate_gradient(model, x, first, q, seed=1)
    if alone is None:
        assert again is None
    else:
        assert torch.equal(alone, again)
    held = {key for key, value in vars(model.estimator).items() if isinstance(value, Tensor)}
    assert not held  # no tensor outside its registered parameters and buffers


@pytest.mark.parametrize("name", ["score_function", "nvil"])
def test_running_statistics_move_only_after_the_surrogate_and_only_in_training(name):
    torch.manual_seed(0)
    vae = built(name)
    model, x = vae.model, torch.rand(8, 1, 28, 28).bernoulli()
    estimator = model.estimator
    q = model.posterior(x)
    draw = model.training_sample(q)
    cost = Cost(torch.rand(8) * 100, None, x)
    before = {k: v.clone() for k, v in estimator.state_dict().items() if "baseline." not in k}
    estimator.surrogate(q, draw, cost)
    assert all(torch.equal(v, estimator.state_dict()[k]) for k, v in before.items())  # reading only
    vae.eval()
    surrogate_and_statistics(estimator, q, draw, cost)
    assert all(torch.equal(v, estimator.state_dict()[k]) for k, v in before.items())  # not in evaluation
    vae.train()
    surrogate_and_statistics(estimator, q, draw, cost)
    assert any(not torch.equal(v, estimator.state_dict()[k]) for k, v in before.items())  # once per batch
