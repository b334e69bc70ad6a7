"""Optimizer implementations: fused by default where the device has it, the same training as the loop, and
checkpoints that move between implementations."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import FAST, build_model
from tests.test_training import SHORT
from vae_zoo.cli import train
from vae_zoo.data.mnist import MNISTDataModule
from vae_zoo.errors import ConfigError
from vae_zoo.optimizers import implementation_flags

CPU = torch.device("cpu")


def test_auto_picks_fused_where_the_device_has_it_and_the_loop_where_nothing_else_exists():
    assert implementation_flags("auto", torch.optim.Adam, CPU) == {"fused": True, "foreach": False}
    assert implementation_flags("auto", torch.optim.RMSprop, CPU) == {"foreach": False}  # no fused kernel
    assert implementation_flags("for_loop", torch.optim.AdamW, CPU) == {"fused": False, "foreach": False}
    if torch.cuda.is_available():
        assert implementation_flags("auto", torch.optim.Adam, torch.device("cuda"))["fused"]


@pytest.mark.parametrize(
    ("impl", "message"),
    [
        (
            "foreach",
            "model.optimizer.impl=foreach is not available for Adam on cpu (available: fused, for_loop)",
        ),
        ("fastest", "model.optimizer.impl='fastest' is not one of auto, fused, foreach, for_loop"),
    ],
)
def test_an_unavailable_implementation_is_one_line_naming_what_is(impl, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        implementation_flags(impl, torch.optim.Adam, CPU)


def test_clipping_under_mixed_precision_leaves_out_the_fused_kernel(make_cfg):
    """Lightning refuses to clip a fused optimizer's gradients under mixed precision (it leaves their unscaling
    to the kernel): ``auto`` then picks the loop, ``fused`` is one line, and such a run trains."""
    assert implementation_flags("auto", torch.optim.Adam, CPU, clips_mixed_precision=True) == {
        "fused": False,
        "foreach": False,
    }
    with pytest.raises(ConfigError, match=r"^model.optimizer.impl=fused cannot have its gradients clipped"):
        implementation_flags("fused", torch.optim.Adam, CPU, clips_mixed_precision=True)
    metrics = train(make_cfg(*SHORT, "trainer.precision=bf16-mixed", "trainer.gradient_clip_val=1"))
    assert metrics["global_step"] > 0 and torch.isfinite(torch.tensor(metrics["test/elbo"]))


def _trained_parameters(impl: str, images: torch.Tensor, steps: int) -> torch.Tensor:
    torch.manual_seed(0)
    model = build_model(hidden=(64,))
    model.hparams.optimizer["impl"] = impl
    optimizer = model.configure_optimizers()
    for step in range(steps):
        x = torch.bernoulli(images[step % 4 :: 4][:128], generator=torch.Generator().manual_seed(step))
        loss, _ = model.objective(model.model, x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_fused_and_loop_adam_train_the_same_model_from_the_same_seed(data_dir):
    images = torch.tensor(MNISTDataModule(data_dir).load_splits()["val"][:1024]).float().div(255)
    fused, loop = (_trained_parameters(impl, images, steps=50) for impl in ("fused", "for_loop"))
    start = _trained_parameters("for_loop", images, steps=0)
    moved = (loop - start).abs().max()
    # same seed, same batches and noise: the two differ by float32 rounding only (measured 5.2e-8 here,
    # for parameters that moved by up to 5.6e-2); the stated tolerance is 1e-5
    assert (fused - loop).abs().max() < 1e-5
    assert moved > 1e-2


def test_a_fused_checkpoint_resumes_under_the_loop_implementation_and_vice_versa(make_cfg, tmp_path):
    first, second = tmp_path / "fused", tmp_path / "loop"
    train(make_cfg(*SHORT, *FAST, "model.optimizer.impl=fused", output_dir=first))
    steps = ("trainer.max_epochs=2", f"ckpt_path={first}/checkpoints/last.ckpt")
    loop_metrics = train(make_cfg(*SHORT, *FAST, *steps, "model.optimizer.impl=for_loop", output_dir=second))
    fused_metrics = train(
        make_cfg(*SHORT, *FAST, *steps, "model.optimizer.impl=fused", output_dir=tmp_path / "f2")
    )
    checkpoint = torch.load(second / "checkpoints" / "last.ckpt", weights_only=False)
    group = checkpoint["optimizer_states"][0]["param_groups"][0]
    assert (group["fused"], group["foreach"]) == (False, False)  # the configured implementation won
    assert checkpoint["global_step"] == 10
    assert loop_metrics["val/elbo"] == pytest.approx(fused_metrics["val/elbo"], rel=1e-4)
