"""Training objectives: the loss and its named terms."""

from vae_zoo.objectives.elbo import ELBO
from vae_zoo.objectives.iwae import IWAE
from vae_zoo.objectives.objective import Objective, ObjectiveOutput
from vae_zoo.objectives.semi_supervised import SemiSupervisedELBO

__all__ = ["ELBO", "IWAE", "Objective", "ObjectiveOutput", "SemiSupervisedELBO"]
