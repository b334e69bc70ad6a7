"""The prior contract: ``p(z)`` over the latent family's sample space, as a component of its own."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from torch import nn
from torch.distributions import Distribution, constraints

if TYPE_CHECKING:
    from vae_zoo.forward_path import ForwardPath


class SupportRequirement(NamedTuple):
    """What a prior (or a flow) needs of the latent family's posterior, in words for messages, and the test."""

    needs: str
    met_by: Callable[[Distribution], bool]


def on_the_reals(q: Distribution) -> bool:
    """Whether ``q``'s support is all of R^D (its coordinates' support is ``constraints.real``)."""
    support = q.support
    while isinstance(support, constraints.independent):
        support = support.base_constraint
    return isinstance(support, type(constraints.real))


CONTINUOUS = SupportRequirement("a continuous density", lambda q: not q.support.is_discrete)
REAL = SupportRequirement("a density on all of R^D", on_the_reals)
ANY = SupportRequirement("nothing", lambda q: True)


class Prior(ABC, nn.Module):
    """``p(z)``, built from ``conf/prior/<name>.yaml`` (``# @package model.prior``). ``distribution(model)``
    is a ``torch.distributions`` object over the latent family's samples (``log_prob``, ``sample`` with any
    ``sample_shape``), which may depend on the model's other parts (the VampPrior's encoder).
    ``closed_form_kl`` says whether ``KL(q || p)`` has a closed form (the family's own prior); otherwise
    objectives use the one-sample estimate ``log q(z) - log p(z)`` at their own sample. ``requires`` is what
    it needs of the posterior, checked at start-up; ``sizes`` the sizes its parameters need
    (``latent_features``, ``input_shape``), given at construction."""

    closed_form_kl: bool = False
    requires: SupportRequirement = ANY
    sizes: tuple[str, ...] = ()

    @abstractmethod
    def distribution(self, model: ForwardPath) -> Distribution:
        """``p(z)``."""
