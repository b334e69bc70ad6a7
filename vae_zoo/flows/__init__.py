"""Posterior flows: invertible transforms of q(z|x)'s samples, chosen by ``flow=``."""
