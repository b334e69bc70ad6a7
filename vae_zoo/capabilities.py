"""What a component needs of the posterior, read from the distribution itself (as Pyro and torch do): the one
vocabulary of capabilities that estimators, priors, flows and objectives state their needs in.

Each names one ``Requirement`` (``requires``); the pairing check (``vae_zoo.pairing``) tests it on the latent
family's posterior (through the flow, for estimators) at start-up and refuses a pairing that cannot work in one
line. The facts about torch's own classes that torch does not state as data are kept here, in one place:

- ``has_rsample`` is torch's flag for a sample that carries the pathwise gradient.
- A CDF differentiable in the parameters: a distribution class says so with ``has_differentiable_cdf =
  True`` (``vae_zoo.latents.gamma_cdf.DifferentiableCDFGamma``); of torch's classes, ``Normal``'s
  ``erf``-based CDF is. torch's ``Gamma``, ``Beta`` and ``Dirichlet`` have no such CDF, but their
  ``rsample`` already differentiates the sample implicitly (``-dF/dalpha / q`` in a fused kernel), so
  they meet the implicit rule's requirement too (``IMPLICIT_RSAMPLE``), as does a class that declares
  ``implicit_rsample = True`` (``vae_zoo.latents.von_mises_fisher_distribution.VonMisesFisher``).
- Categorical logits: a ``OneHotCategorical`` per coordinate; Bernoulli logits: a ``Bernoulli``; discrete
  logits: either (what the relaxations of ``vae_zoo.estimators.relaxation`` take).
- A score, ``grad log q(z)``: every distribution has ``log_prob``, but a point mass's is 0 at its one point whatever
  its parameters (a class says so with ``point_mass = True``: ``vae_zoo.latents.vector_quantized_distribution``).
- Support: continuous (a density), or all of R^D (what a Gaussian mixture prior or a flow's density needs; a
  circular family declares its support as an interval even where torch says the real line).
- Parameters held as tensors, so that ``log q(z)`` can be evaluated with them held fixed (what the doubly
  reparameterized gradient needs): read from what the distribution object holds.
- Independent latent units: an ``Independent`` over one batch dimension, the units, whose inner distribution
  gives each unit's own density (what a total correlation's marginals need); a flow's posterior and a two-layer
  chain's are not. A diagonal Normal: such units, each a ``Normal`` (what DIP-VAE's covariances read).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor
from torch.distributions import (
    Bernoulli,
    Beta,
    Dirichlet,
    Distribution,
    Gamma,
    Independent,
    Normal,
    OneHotCategorical,
    constraints,
    kl_divergence,
)

#: torch classes whose CDF is differentiable in their parameters, beside classes that declare it
DIFFERENTIABLE_CDF = (Normal,)
#: torch classes whose ``rsample`` is the implicit reparameterization gradient
IMPLICIT_RSAMPLE = (Gamma, Beta, Dirichlet)


def coordinates(q: Distribution) -> Distribution:
    """The per-coordinate distribution inside any ``Independent`` wrappers."""
    while isinstance(q, Independent):
        q = q.base_dist
    return q


def has_differentiable_cdf(q: Distribution) -> bool:
    base = coordinates(q)
    return bool(getattr(base, "has_differentiable_cdf", False)) or isinstance(base, DIFFERENTIABLE_CDF)


def has_implicit_rsample(q: Distribution) -> bool:
    base = coordinates(q)
    return bool(getattr(base, "implicit_rsample", False)) or isinstance(base, IMPLICIT_RSAMPLE)


class Requirement(NamedTuple):
    """What a component (estimator, prior, flow) needs of ``q``, in words for messages, and the test of it."""

    needs: str
    met_by: Callable[[Distribution], bool]


RSAMPLE = Requirement("a reparameterized sample (rsample)", lambda q: q.has_rsample)
IMPLICIT = Requirement(
    "a CDF differentiable in its parameters (or torch's implicit rsample)",
    lambda q: has_differentiable_cdf(q) or has_implicit_rsample(q),
)
CATEGORICAL_LOGITS = Requirement(
    "categorical logits", lambda q: isinstance(coordinates(q), OneHotCategorical)
)
BERNOULLI_LOGITS = Requirement("Bernoulli logits", lambda q: isinstance(coordinates(q), Bernoulli))
DISCRETE_LOGITS = Requirement(
    "Bernoulli or categorical logits", lambda q: isinstance(coordinates(q), (Bernoulli, OneHotCategorical))
)


def is_point_mass(q: Distribution) -> bool:
    """Whether ``q`` is a point mass (its class says ``point_mass = True``): ``log q = 0`` at its one point."""
    return bool(getattr(coordinates(q), "point_mass", False))


SCORE = Requirement(
    "a score: a log-density that moves with its parameters (not a point mass)", lambda q: not is_point_mass(q)
)


def on_the_reals(q: Distribution) -> bool:
    """Whether ``q``'s support is all of R^D (its coordinates' support is ``constraints.real``)."""
    support = q.support
    while isinstance(support, constraints.independent):
        support = support.base_constraint
    return isinstance(support, type(constraints.real))


def has_closed_form_kl(q: Distribution, p: Distribution) -> bool:
    """Whether torch's KL registry has ``KL(q || p)`` for these two distributions (tried once, on a probe)."""
    try:
        with torch.no_grad():
            kl_divergence(q, p)
    except NotImplementedError:
        return False
    return True


#: what a distribution may hold beside its parameter tensors and inner distributions: shapes, flags, bounds
PLAIN_VALUES = (bool, int, float, str, type(None), torch.Size)


def holds_tensor_parameters(q: Distribution) -> bool:
    """Whether all ``q`` holds is tensors, plain values and inner distributions that do likewise: then a copy with
    its tensors detached is ``q`` with its parameters held fixed (``vae_zoo.objectives.doubly_reparameterized``).
    A flow's transforms and a two-layer chain's conditional network are not tensors."""
    return all(
        isinstance(value, (Tensor, *PLAIN_VALUES))
        or (isinstance(value, Distribution) and holds_tensor_parameters(value))
        for value in vars(q).values()
    )


CONTINUOUS = Requirement("a continuous density", lambda q: not q.support.is_discrete)
REAL = Requirement("a density on all of R^D", on_the_reals)
ANY = Requirement("nothing", lambda q: True)
FIXED_PARAMETERS = Requirement(
    "parameters that are tensors (to evaluate log q(z) with them held fixed)", holds_tensor_parameters
)
INDEPENDENT_UNITS = Requirement(
    "independent latent units (an Independent over them, each with its own density)",
    lambda q: isinstance(q, Independent) and q.reinterpreted_batch_ndims == 1,
)
DIAGONAL_NORMAL = Requirement(
    "a diagonal Normal (a mean and a variance per latent unit)",
    lambda q: INDEPENDENT_UNITS.met_by(q) and type(q.base_dist) is Normal,
)
