"""``hydra/sweeper=checked`` (``train.py``'s default): Hydra's basic sweeper, whose check that every job of the
sweep composes, made before the first job runs, answers a refusal (``-m model=gaussian_vae,gausian_vae``) with
vae_zoo's one line and exit status 2 instead of Hydra's report."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.errors import HydraException


class CheckedSweeper(BasicSweeper):
    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        try:
            super().validate_batch_is_legal(batch)
        except HydraException as error:
            from vae_zoo.composition_errors import composition_error

            print(f"error: {composition_error(error)}", file=sys.stderr)
            sys.exit(2)
