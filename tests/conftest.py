"""Shared fixtures and helpers: real data from VAE_ZOO_DATA_DIR, configs composed as train.py composes
them, models built from the config groups' own files, and the CLI run as a user runs it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from tests.forked_cli import run_forked
from vae_zoo.compose import compose_config
from vae_zoo.config_groups import options
from vae_zoo.errors import ConfigError
from vae_zoo.models import VAE
from vae_zoo.probabilistic_model import ProbabilisticModel

ROOT = Path(__file__).resolve().parent.parent
FAST = ("eval.iw_samples=8", "eval.iw_chunk=4", "trainer.accelerator=cpu")
#: a tiny MLP model trained deterministically on the CPU, without callbacks or loggers
TINY = (
    "model.encoder.hidden=[32]",
    "model.decoder.hidden=[32]",
    "model.latent.dim=8",
    "data.batch_size=32",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "data.eval_batch_size=50",
    "eval.iw_samples=4",
    "trainer.deterministic=true",
    "trainer.accelerator=cpu",
    "callbacks=none",
    "logger=[]",
)


@pytest.fixture(scope="session")
def data_dir() -> str:
    path = os.environ.get("VAE_ZOO_DATA_DIR")
    if not path or not (Path(path) / "MNIST" / "raw").is_dir():
        reason = "needs real MNIST: set VAE_ZOO_DATA_DIR to a folder with MNIST/raw (e.g. ../shared/data)"
        if os.environ.get("CI"):
            pytest.fail(reason)  # CI has the data: a skip there would hide a broken setup
        pytest.skip(reason)
    return path


@pytest.fixture
def make_cfg(tmp_path, data_dir):
    """``make_cfg(*overrides)``: the train config on real data, writing into a fresh temporary run dir."""

    def make(*overrides: str, output_dir: Path | None = None, config_name: str = "train"):
        out = output_dir or tmp_path / "run"
        return compose_config([f"paths.data_dir={data_dir}", *overrides], out, config_name=config_name)

    yield make
    GlobalHydra.instance().clear()


def component(group: str, option: str, **settings: Any) -> dict[str, Any]:
    """The config dict of ``conf/<group>/<option>.yaml`` with ``settings`` overriding its own."""
    return {**options(group)[option], **settings}


def build_model(
    latent: str = "normal",
    estimator: str = "pathwise",
    objective: str = "elbo",
    likelihood: str = "bernoulli",
    hidden: Sequence[int] = (32,),
    latent_settings: dict[str, Any] | None = None,
    estimator_settings: dict[str, Any] | None = None,
    objective_settings: dict[str, Any] | None = None,
    **kwargs: Any,
) -> VAE:
    """A small VAE for 28x28 images from the named options of each component group, MLP networks of ``hidden``
    units unless ``encoder`` and ``decoder`` configs are given."""
    kwargs.setdefault("encoder", {"_target_": "vae_zoo.nets.mlp.MLPEncoder", "hidden": list(hidden)})
    kwargs.setdefault("decoder", {"_target_": "vae_zoo.nets.mlp.MLPDecoder", "hidden": list(hidden)})
    return VAE(
        latent=component("latent", latent, **(latent_settings or {})),
        estimator=component("estimator", estimator, **(estimator_settings or {})),
        objective=component("objective", objective, **(objective_settings or {})),
        likelihood=component("likelihood", likelihood),
        optimizer={"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3},
        **kwargs,
    )


def model_of(latent: str, **kwargs: Any) -> ProbabilisticModel:
    """A small model of ``latent`` with the first estimator that pairs with it, in evaluation mode."""
    for estimator in sorted(options("estimator")):
        try:
            return build_model(latent, estimator, **kwargs).model.eval()
        except ConfigError:
            continue
    raise AssertionError(f"no estimator pairs with latent={latent}")


def mnist_like(images: int, seed: int) -> torch.Tensor:
    """Random binary 28x28 images."""
    return (torch.rand(images, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) > 0.5).float()


def binarized_digits(data_dir: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The first 6400 MNIST training digits and the first 500 test digits, each binarized once by its own seed."""
    from vae_zoo.data import MNISTDataModule

    dm = MNISTDataModule(data_dir, binarize="none")
    dm.setup()
    train = (dm.splits["train"][:6400].float() / 255).bernoulli(generator=torch.Generator().manual_seed(0))
    test = (dm.splits["test"][:500].float() / 255).bernoulli(generator=torch.Generator().manual_seed(1))
    return train, test


def train_steps(vae: VAE, images: torch.Tensor, steps: int = 200, batch: int = 128) -> None:
    """``steps`` Adam steps (rate 1e-3) of ``vae``'s objective on ``images`` in turn, ``batch`` at a time."""
    optimizer = torch.optim.Adam(vae.model.parameters(), lr=1e-3)
    batches = len(images) // batch
    for step in range(steps):
        loss, _ = vae.objective(vae.model, images[(step % batches) * batch : (step % batches + 1) * batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def codebook_and_averages(seed: int, k: int, dim: int, models: int | None = None) -> list[torch.Tensor]:
    """A VQ-VAE codebook ``(k, dim)`` with its moving averages, counts ``(k,)`` in ``[0, 3)`` and sums ``(k, dim)``
    (one of each per packed model with ``models``)."""
    generator = torch.Generator().manual_seed(seed)
    lead = () if models is None else (models,)
    return [
        torch.randn(*lead, k, dim, generator=generator),
        torch.rand(*lead, k, generator=generator) * 3,
        torch.randn(*lead, k, dim, generator=generator),
    ]


def encoder_outputs(
    seed: int, images: int, positions: int, dim: int, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """VQ-VAE encoder outputs ``(images, positions, dim)``, codes for them (any codes: the codebook's updates read
    them as given) and image weights."""
    generator = torch.Generator().manual_seed(seed)
    encoded = torch.randn(images, positions, dim, generator=generator)
    codes = torch.randint(0, k, (images, positions), generator=generator)
    return encoded, codes, torch.rand(images, generator=generator)


def free_port() -> int:
    """A TCP port of this machine that nothing listens on (for a process group's rendezvous)."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        return free.getsockname()[1]


def refusal(**settings: Any) -> str:
    """The one-line ``ConfigError`` that ``build_model(**settings)`` stops with (the test fails where it builds)."""
    with pytest.raises(ConfigError) as refused:
        build_model(**settings)
    return str(refused.value)


def flat_gradient(module: torch.nn.Module, loss: torch.Tensor) -> torch.Tensor:
    """The gradient of ``loss`` in every trainable parameter of ``module``, flattened into one vector (zeros where
    it does not reach), the graph kept."""
    params = [p for p in module.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).flatten() for p, g in zip(params, grads)])


def run_command(
    command: Sequence[str], cwd: Path = ROOT, pythonpath: Path | str = ROOT
) -> subprocess.CompletedProcess:
    """``command`` in a subprocess with ``pythonpath`` (a path, or paths joined by ``os.pathsep``) first on
    the import path, output captured. A Python script on this checkout runs forked from a server that has
    imported its packages (``forked_cli``: a process of its own, 5 s sooner)."""
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    if command[0] == sys.executable and str(command[1]).endswith(".py") and Path(pythonpath) == ROOT:
        return run_forked(command, cwd, env, timeout=600)
    return subprocess.run(
        list(command), check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def run_script(script: str, *overrides: str) -> subprocess.CompletedProcess:
    """``python <script> <overrides>`` from the repository root, as a user runs it."""
    return run_command([sys.executable, str(ROOT / script), *overrides])


#: a tiny model with its checkpoints (the default callbacks) and no logger, 2 steps an epoch
SMALL_RUN = (*TINY[:-2], "logger=[]", "+trainer.limit_train_batches=2")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, data_dir) -> Path:
    """A real run directory of ``SMALL_RUN`` (one epoch): its ``.hydra/``, checkpoints and metrics, for the
    targets and the findings' tests to change copies of."""
    run = tmp_path_factory.mktemp("trained") / "run"
    result = run_script(
        "train.py", *SMALL_RUN, "trainer.max_epochs=1", f"paths.data_dir={data_dir}", f"hydra.run.dir={run}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run


@pytest.fixture(scope="module")
def trained_checkpoint(trained_run) -> dict:
    """``trained_run``'s ``last.ckpt`` as plain data and tensors."""
    return torch.load(trained_run / "checkpoints" / "last.ckpt", weights_only=True)
