"""Encoders (image -> features) and decoders (latent sample -> likelihood parameters)."""
