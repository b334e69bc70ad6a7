"""The model-dependent part of ``hparams_search=optuna``: Optuna's ``custom_search_space`` hook.

The learning rate is searched for every model (``hydra.sweeper.params`` in the config); this adds what
the composed config shows the model has: a latent size (``model.latent.dim`` or, for N x K categorical
latents, ``model.latent.n``) and, when the temperature is annealed, the annealing rate.
"""

from __future__ import annotations

from omegaconf import DictConfig
from optuna.trial import Trial

LATENT_DIMS = (8, 16, 32, 64)
CATEGORICAL_VARIABLES = (10, 20, 30, 40)
ANNEALING_RATES = (1e-5, 1e-4)


def suggest_model_parameters(cfg: DictConfig, trial: Trial) -> None:
    """Suggest the latent size and, for annealed models, the annealing rate; each becomes an override."""
    latent = cfg.model.latent
    if "dim" in latent:
        trial.suggest_categorical("model.latent.dim", LATENT_DIMS)
    if "n" in latent:
        trial.suggest_categorical("model.latent.n", CATEGORICAL_VARIABLES)
    if "temperature" in (cfg.get("callbacks") or {}):
        trial.suggest_float("callbacks.temperature.rate", *ANNEALING_RATES, log=True)
