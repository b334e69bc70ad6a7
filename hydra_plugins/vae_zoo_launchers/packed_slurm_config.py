"""The schema of ``hydra/launcher=packed_slurm``: submitit's SLURM settings and ``max_models``."""

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore
from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf


@dataclass
class PackedSlurmQueueConf(SlurmQueueConf):
    _target_: str = "hydra_plugins.vae_zoo_launchers.packed_slurm_launcher.PackedSlurmLauncher"
    max_models: int = 16


ConfigStore.instance().store(
    group="hydra/launcher", name="packed_submitit_slurm", node=PackedSlurmQueueConf, provider="vae_zoo"
)
