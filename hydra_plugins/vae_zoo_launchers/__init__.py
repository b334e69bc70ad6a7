"""vae_zoo's Hydra launchers. Hydra instantiates launchers only from the ``hydra_plugins`` namespace package, and
imports every module here at start-up: they import nothing heavy at module level."""
