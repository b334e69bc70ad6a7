"""The prior contract: ``p(z)`` over the latent family's sample space, as a component of its own."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from torch import nn
from torch.distributions import Distribution

from vae_zoo.capabilities import ANY, Requirement

if TYPE_CHECKING:
    from vae_zoo.forward_path import ForwardPath


class Prior(ABC, nn.Module):
    """``p(z)``, built from ``conf/prior/<name>.yaml`` (``# @package model.prior``). ``distribution(model)``
    is a ``torch.distributions`` object over the latent family's samples (``log_prob``, ``sample`` with any
    ``sample_shape``), which may depend on the model's other parts (the VampPrior's encoder).
    Whether ``KL(q || p)`` has a closed form is read from torch's KL registry when the model is built (a
    prior whose distribution class has a registered KL with the posterior's gets it, ``prior=learned_normal``);
    otherwise objectives use the one-sample estimate ``log q(z) - log p(z)`` at their own sample. ``requires`` is what
    it needs of the posterior, checked at start-up; ``sizes`` the sizes its parameters need
    (``latent_features``, ``input_shape``), given at construction."""

    requires: Requirement = ANY
    sizes: tuple[str, ...] = ()
    #: parameters used only broadcast against per-image values (a learned prior's): a packed model
    #: (``vae_zoo.packing``) gives each image its own model's copy
    per_image_parameters: tuple[str, ...] = ()
    #: parameters packed models hold one each of, stacked ``(N, ...)``, which the prior reads per model (the
    #: VampPrior's pseudo-inputs)
    per_model_state: tuple[str, ...] = ()

    @abstractmethod
    def distribution(self, model: ForwardPath) -> Distribution:
        """``p(z)``."""
