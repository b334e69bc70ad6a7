"""The named models: the shared VAE with its latent family preset, for Python users and older checkpoints.

``model=gaussian_vae | gumbel_vae | gamma_vae`` choose the same latents through config groups; these
classes give ``GaussianVAE(encoder=..., latent={"dim": 16}, ...)`` and ``GaussianVAE.load_from_checkpoint``.
Checkpoints written by vae_zoo up to commit 48663a0 (latent settings without ``_target_``, and the ELBO's
KL mode as the model's ``kl``) load through the same path.
"""

from __future__ import annotations

from typing import Any

from vae_zoo.models.vae import VAE


class _Preset(VAE):
    latent_target: str

    def __init__(self, latent: dict[str, Any] | None = None, kl: str | None = None, **kwargs: Any) -> None:
        """``kl``: checkpoints up to 48663a0 kept the ELBO's KL mode on the model."""
        latent = {"_target_": self.latent_target, **(latent or {})}
        if kl is not None and kwargs.get("objective") is None:
            kwargs["objective"] = {"_target_": "vae_zoo.objectives.ELBO", "kl": kl}
        super().__init__(latent=latent, **kwargs)


class GaussianVAE(_Preset):
    """Diagonal-Normal latents with a standard-Normal prior (Kingma & Welling 2014); ``latent={"dim": D}``."""

    latent_target = "vae_zoo.latents.NormalLatent"


class GumbelSoftmaxVAE(_Preset):
    """N x K categorical latents (Jang et al. 2016); ``latent={"n": N, "k": K, "prior": "uniform"}``."""

    latent_target = "vae_zoo.latents.CategoricalLatent"


class GammaVAE(_Preset):
    """Gamma latents with a Gamma(alpha0, beta0) prior (Figurnov et al. 2018); ``latent={"dim": D, ...}``."""

    latent_target = "vae_zoo.latents.GammaLatent"
