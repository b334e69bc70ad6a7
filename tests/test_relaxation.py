"""The relaxations' conditional resampling, on which REBAR, RELAX and Gumbel-Rao rest: ``z~ ~ p(z | H(z) = b)``
lands on ``b`` and, with ``b = H(z)``, has the distribution of ``z`` itself; its backward pass stays finite
where the posterior is nearly certain."""

from __future__ import annotations

import pytest
import torch

from vae_zoo.estimators.relaxation import BinaryRelaxation, CategoricalRelaxation

DRAWS = 200_000
KINDS = {
    "binary": lambda: BinaryRelaxation(torch.tensor([-2.0, -0.3, 0.0, 1.1, 3.0])),
    "categorical": lambda: CategoricalRelaxation(torch.tensor([[0.5, -1.0, 2.0], [0.0, 0.0, -3.0]])),
}


@pytest.mark.parametrize("kind", KINDS)
def test_conditional_resampling_keeps_the_sample_and_the_distribution_of_the_noise(kind):
    torch.manual_seed(0)
    relaxing = KINDS[kind]()
    z = relaxing.perturb((DRAWS,))
    b = relaxing.hard(z)
    tilde = relaxing.conditional(b)
    assert torch.equal(relaxing.hard(tilde), b)
    for statistic in (lambda s: s, lambda s: s.square(), lambda s: torch.sigmoid(s)):
        a, c = statistic(z), statistic(tilde)
        error = ((a.var(0) + c.var(0)) / DRAWS).sqrt()
        assert ((a.mean(0) - c.mean(0)).abs() / error).max() < 4.5


@pytest.mark.parametrize("kind", KINDS)
def test_conditional_resampling_has_finite_gradients_where_the_posterior_is_nearly_certain(kind):
    torch.manual_seed(0)
    if kind == "binary":
        logits = torch.tensor([-60.0, -20.0, 20.0, 60.0], requires_grad=True)
        relaxing = BinaryRelaxation(logits)
    else:  # log-probabilities 0 and about -45: 1 / p^2 overflows float32 in a naive backward pass
        logits = torch.tensor([[45.0, 0.0, 21.0, 20.0], [0.0, -30.0, -45.0, 5.0]], requires_grad=True)
        relaxing = CategoricalRelaxation(logits)
    b = relaxing.hard(relaxing.perturb((1000,)).detach())
    relaxed = relaxing.relax(relaxing.conditional(b), 0.3)
    (gradient,) = torch.autograd.grad((relaxed * torch.linspace(-1, 1, relaxed.shape[-1])).sum(), logits)
    assert torch.isfinite(gradient).all()
