"""vae_zoo's Hydra plugins: the packed and SLURM launchers, and the sweeper that checks a sweep's jobs in one line.
Hydra instantiates plugins only from the ``hydra_plugins`` namespace package, and imports every module here at
start-up: they import nothing heavy at module level."""
