"""Priors p(z): a component of their own, chosen by ``prior=`` (the latent family keeps its own as ``standard``)."""
