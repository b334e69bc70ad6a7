"""The gradient-estimator contract: how a posterior sample carries gradient to the encoder."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from vae_zoo.capabilities import Requirement
from vae_zoo.errors import ConfigError


class Cost(NamedTuple):
    """The sample-dependent part of a loss: its value at the drawn ``z`` and the function that computed it,
    for estimators that evaluate the cost at other points (control variates at relaxed samples); the
    images it is the cost of (for baselines that depend on the input); and, for a cost that is the
    ``-log mean exp`` of per-sample terms (the importance-weighted bound), those terms ``log w_i``."""

    value: Tensor  # per image, or per draw and image
    at: Callable[[Tensor], Tensor]  # the same cost at another z of the drawn sample's shape
    x: Tensor | None = None  # the images, (B, C, H, W)
    log_weights: Tensor | None = None  # log w_i, shape (..., k, B), where the value is -log (1/k) sum_i w_i


class Draw(NamedTuple):
    """A training sample and what the estimator's ``surrogate`` needs of how it was drawn (ARM's uniform
    noise, REBAR's perturbed logits with their graph to the logits). The objective hands it from ``draw`` to
    ``surrogate``, so an estimator keeps nothing between the two calls."""

    value: Tensor  # the sample z, shaped as ``Estimator.sample`` returns it
    noise: Tensor | None = None


class Estimator(ABC, nn.Module):
    """Draws the training sample ``z ~ q(z|x)`` so that ``grad E_q[f(z)]`` is estimated correctly.

    Pathwise estimators return a sample whose gradient is the estimate and add no surrogate. Others
    (score function) return a sample without gradient and a ``surrogate`` whose gradient, added to the
    loss, completes the estimate. A module, so any state (a baseline) is saved in checkpoints. ``draw`` returns the sample with what the
    surrogate needs of it (a ``Draw``), and ``surrogate`` reads nothing else of the sampling: the estimator
    holds no tensors between the calls. Running statistics change only in ``update_statistics``, which the
    training loss calls after the surrogate, outside its graph (``surrogate_and_statistics``).

    ``requires`` is what the estimator needs of ``q`` (``vae_zoo.capabilities``); the model
    checks it on its latent family's posterior at start-up, so adding an estimator is its ``.py`` and
    its ``conf/estimator/<name>.yaml`` alone. ``exact_samples`` says whether the sample lies in q's
    support, where ``log q(z)`` is defined (a relaxed categorical sample does not); objectives that
    evaluate densities at the sample (IWAE, the ELBO with a one-sample KL) need it.
    """

    requires: Requirement
    exact_samples: bool = True
    #: whether the gradient estimate's expectation is the true gradient (documented and tested numerically)
    unbiased: bool = True
    #: whether the sample is a differentiable function of the parameters and parameter-free noise (explicit or
    #: implicit reparameterization), so that its gradient is the whole estimate and it adds no surrogate
    reparameterized: bool = False
    #: independent draws per requested sample: an estimator with ``draws = n > 1`` returns a leading dim of n
    #: draws (antithetic pairs, leave-one-out groups) whose costs it compares; objectives average over it
    draws: int = 1
    #: the fewest samples per image the objective's cost must be a joint function of (VIMCO: 2)
    min_objective_samples: int = 1
    #: evaluations of the cost per draw beyond the one at the sample (REBAR's two at relaxed samples)
    extra_cost_evaluations: int = 0
    #: the relaxation's temperature for estimators that relax their samples (set each step by
    #: ``callbacks.temperature``); None for the others
    temperature: float | None = None
    #: sizes the estimator's own networks need, given at construction: ``input_shape`` (of the images),
    #: ``latent_features`` (of a flattened sample)
    sizes: tuple[str, ...] = ()
    #: models packed along the batch (``vae_zoo.packing``: their images in turn), set by ``pack``; the
    #: estimator then reduces its statistics and own objectives per model (``vae_zoo.packed_batch``)
    models: int = 1
    #: its scalar statistics and parameters, which packed models hold one each of, ``(N,)``; read per image
    #: with ``packed_batch.per_image`` (its networks pack as the model's do)
    per_model_state: tuple[str, ...] = ()

    @abstractmethod
    def sample(self, q: Distribution, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        """``sample_shape + q.batch_shape + q.event_shape`` draws carrying this estimator's gradient
        (with ``draws > 1``: ``(draws,) + sample_shape + ...``)."""

    def draw(self, q: Distribution, sample_shape: torch.Size | tuple[int, ...] = ()) -> Draw:
        """The training sample of ``sample`` with what ``surrogate`` needs of it (nothing, unless overridden)."""
        return Draw(self.sample(q, sample_shape))

    def surrogate(self, q: Distribution, draw: Draw, cost: Cost) -> Tensor | None:
        """A term of ``cost.value``'s shape whose gradient completes the estimate of ``grad E_q[cost]``
        (``draw.value`` may carry sample dims that ``cost.value`` has reduced over); None if there is none.
        Reads the estimator's statistics, never changes them."""
        return None

    def update_statistics(self, cost: Cost) -> None:
        """Move running statistics (moving-average baselines) with this training batch's cost; nothing unless
        overridden. Called once per training batch, after the surrogate, under ``no_grad``."""

    def param_groups(self) -> list[dict]:
        """Optimizer parameter groups of the estimator's own parameters (baselines, temperatures, surrogate
        networks), each with its own settings (``lr``); the model's optimizer trains them beside the model's
        and checkpoints them with it. Their gradients come from the surrogate: zero-valued terms whose
        gradient is the estimator's own objective (``own_objective``)."""
        return []


def surrogate_and_statistics(estimator: Estimator, q: Distribution, draw: Draw, cost: Cost) -> Tensor | None:
    """The surrogate of a training loss, then, where the estimator is in training mode, its running statistics
    moved with this batch's cost: the one place they change, outside the differentiated term (the surrogate
    used the values from before this batch, so its baseline does not depend on this batch's sample)."""
    term = estimator.surrogate(q, draw, cost)
    if estimator.training:
        with torch.no_grad():
            estimator.update_statistics(cost)
    return term


def own_learning_rate(lr: float | None) -> float | None:
    """An estimator's ``lr`` for its own parameters, checked: > 0, or None for the model's."""
    if lr is not None and not lr > 0:
        raise ConfigError(f"model.estimator.lr={lr} must be > 0 (or null: the model's learning rate)")
    return lr


def own_group(params, lr: float | None) -> dict:
    """An optimizer parameter group of an estimator's own ``params``, with ``lr`` where one is set."""
    return {"params": list(params), **({"lr": lr} if lr else {})}


def gradient_term(params: list[Tensor], grads: list[Tensor]) -> Tensor:
    """A term of value exactly 0 whose gradient with respect to each of ``params`` is the matching entry of
    ``grads`` (``sum p * stop(g) - stop(.)``): how an estimator hands the model's optimizer the gradient of
    its own objective for its own parameters alone, where that objective depends on more than them (the
    variance of REBAR's estimate depends on the encoder and decoder too)."""
    total = sum((p * g.detach()).sum() for p, g in zip(params, grads))
    return total - total.detach()


def joint_log_prob(q: Distribution, z: Tensor, value: Tensor, draws: int = 1) -> Tensor:
    """``log q(z)`` shaped like the cost ``value``: summed over the sample dims the cost is a joint function
    of (the k samples of an importance-weighted bound), which follow the ``draws`` dim where there is one."""
    log_q = q.log_prob(z)
    start = 1 if draws > 1 else 0
    reduced = log_q.dim() - value.dim()
    return log_q.sum(tuple(range(start, start + reduced))) if reduced else log_q
