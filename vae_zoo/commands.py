"""The commands ``python train.py``, ``eval.py`` and ``sample.py`` (installed as ``vae-zoo-train``,
``vae-zoo-eval`` and ``vae-zoo-sample``).

A command line Hydra cannot compose -- a mistyped key or option, an override that does not parse -- is
refused in one line (``composition_errors``) before torch and Lightning are imported: in about 0.3 s rather
than after their 5 to 6 s of imports (``scripts/refusal_latency.py``). Only then is ``vae_zoo.cli``, which runs
the command, imported.
"""

from __future__ import annotations

from vae_zoo.composition_errors import refuse_uncomposable

# vae_zoo.cli is imported in each command after its command line composes: that is the point of this module.


def train_main() -> None:
    """``python train.py``: fit, validate and test (``vae_zoo.cli.train``)."""
    refuse_uncomposable("train")
    from vae_zoo.cli import train_task

    train_task()


def eval_main() -> None:
    """``python eval.py``: a checkpoint's test metrics (``vae_zoo.cli.evaluate``)."""
    refuse_uncomposable("eval")
    from vae_zoo.cli import eval_task

    eval_task()


def sample_main() -> None:
    """``python sample.py``: a checkpoint's image grids (``vae_zoo.cli.sample``)."""
    refuse_uncomposable("sample")
    from vae_zoo.cli import sample_task

    sample_task()
