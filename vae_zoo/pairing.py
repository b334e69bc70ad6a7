"""Whether the components can train together, from what each states: the one pairing check.

Estimators, priors and flows state what they need of the posterior (``requires``, a
``vae_zoo.capabilities.Requirement``); the estimator also whether its sample lies in the posterior's support
(``exact_samples``) and whether it is reparameterized (``reparameterized``); the objective whether it evaluates
``log q(z)`` at the training sample (``needs_exact_samples``), whether its gradient flows through the sample
(``needs_reparameterized_samples``) and what it needs of the posterior (``requires``); the posterior is asked what
it can do. A pairing that cannot work stops at
start-up with one line: for an estimator, listing the estimators that would, read from ``conf/estimator/``.
"""

from __future__ import annotations

from typing import Any

from torch.distributions import Distribution
from torch.distributions.exp_family import ExponentialFamily

from vae_zoo.capabilities import coordinates
from vae_zoo.components import component_class
from vae_zoo.config_groups import option_name, options
from vae_zoo.errors import ConfigError
from vae_zoo.estimators.estimator import Estimator
from vae_zoo.latents.family import LatentFamily
from vae_zoo.objectives.objective import Objective


def family_name(q: Distribution) -> str:
    """The family a posterior's coordinates are: the torch.distributions class (``Gamma`` for our CDF
    subclass), else the class itself (our ``TruncatedNormal``), never torch's abstract bases."""
    cls = type(coordinates(q))
    concrete = [c for c in cls.__mro__ if c not in (Distribution, ExponentialFamily, object)]
    return next(
        (c.__name__ for c in concrete if c.__module__.startswith("torch.distributions")), cls.__name__
    )


def check_support(component: Any, group: str, latent: LatentFamily) -> None:
    """Stop with one line when a prior or flow (``group``) needs of the posterior what ``latent``'s lacks."""
    q = latent.probe_posterior()
    if not component.requires.met_by(q):
        raise ConfigError(
            f"{option_name(group, component)} needs {component.requires.needs}, which "
            f"{option_name('latent', latent)}'s {family_name(q)} posteriors lack -- choose another "
            f"{group}= or latent="
        )


def pairing_problem(
    q: Distribution,
    estimator: Estimator | type[Estimator],
    objective: Objective,
    latent: LatentFamily,
    posterior: str | None = None,
) -> str | None:
    """Why ``estimator`` (an instance, or its class: what it states is class-level) cannot train ``latent``
    (posterior ``q``, named ``posterior`` in messages: ``latent=<option>`` unless told) on ``objective``; None if
    it can."""
    if not estimator.requires.met_by(q):
        return (
            f"does not pair with {posterior or option_name('latent', latent)}: it needs {estimator.requires.needs}, "
            f"which {family_name(q)} posteriors lack"
        )
    settings = f" ({objective.extra_repr()})" if objective.extra_repr() else ""
    if estimator.min_objective_samples > objective.samples_per_image:
        return (
            f"does not pair with {option_name('objective', objective)}{settings}: it needs a cost of at least "
            f"{estimator.min_objective_samples} samples per image (objective=iwae objective.k>="
            f"{estimator.min_objective_samples}), and this objective's is of {objective.samples_per_image}"
        )
    if objective.needs_reparameterized_samples and not estimator.reparameterized:
        return (
            f"does not pair with {option_name('objective', objective)}{settings}: its gradient flows through the "
            "training sample, which needs a reparameterized sample (explicit or implicit)"
        )
    if objective.needs_exact_samples and not estimator.exact_samples:
        return (
            f"does not pair with {option_name('objective', objective)}{settings}: the objective evaluates "
            "log q(z) at the training sample, and this estimator's relaxed samples lie outside the "
            "posterior's support"
        )
    return None


def valid_estimators(latent: LatentFamily, objective: Objective, q: Distribution | None = None) -> list[str]:
    """The options of ``conf/estimator/`` that can train ``latent`` (posterior ``q``: the family's own, or
    through a flow) on ``objective``."""
    q = q if q is not None else latent.probe_posterior()
    return [
        name
        for name, config in options("estimator").items()
        if pairing_problem(q, component_class(config, Estimator, "model.estimator"), objective, latent)
        is None
    ]


def check_pairing(
    latent: LatentFamily,
    estimator: Estimator,
    objective: Objective,
    q: Distribution | None = None,
    posterior: str | None = None,
) -> None:
    """Stop with one line if the three cannot train together (on posterior ``q``: the family's own, or
    through a flow, named ``posterior``), naming the estimators that can; or, where the objective needs of the
    posterior what it lacks, naming the objective's setting."""
    q = q if q is not None else latent.probe_posterior()
    if not objective.requires.met_by(q):
        settings = f" ({objective.extra_repr()})" if objective.extra_repr() else ""
        raise ConfigError(
            f"{option_name('objective', objective)}{settings} needs {objective.requires.needs}, which "
            f"{posterior or option_name('latent', latent)}'s {family_name(q)} posteriors lack -- set "
            f"{objective.plain_settings}"
        )
    problem = pairing_problem(q, estimator, objective, latent, posterior)
    if problem is not None:
        choices = ", ".join(f"estimator={name}" for name in valid_estimators(latent, objective, q))
        # the score function pairs with every family and objective but one whose gradient is the sample's alone
        fix = (
            f"choose one of: {choices}"
            if choices
            else f"no estimator of this latent is reparameterized: set {objective.plain_settings}"
        )
        raise ConfigError(f"{option_name('estimator', estimator)} {problem}; {fix}")
