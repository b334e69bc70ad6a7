"""Weight averaging (``+callbacks@callbacks.ema=ema``): the checkpoints' weights are the exponential moving
average of the trained ones, evaluation uses them, and a resumed run continues both exactly."""

from __future__ import annotations

import json

import pytorch_lightning as pl
import torch

import vae_zoo
from tests.conftest import TINY
from vae_zoo.cli import build_datamodule_and_model, build_trainer, reseed, train

EMA = ("+callbacks@callbacks.ema=ema", "callbacks.ema.decay=0.8")


class TrainedWeights(pl.Callback):
    """The model's weights after every optimizer step."""

    def __init__(self) -> None:
        self.values: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.values.append({k: v.detach().clone() for k, v in pl_module.state_dict().items()})


def test_the_checkpoints_weights_are_the_exponential_moving_average_of_the_trained_ones(make_cfg, tmp_path):
    cfg = make_cfg(*TINY, *EMA, "+trainer.max_steps=12", "trainer.max_epochs=1")
    reseed(cfg)
    datamodule, model = build_datamodule_and_model(cfg)
    trainer = build_trainer(cfg)
    trained = TrainedWeights()
    trainer.callbacks.append(trained)
    trainer.fit(model, datamodule=datamodule)
    trainer.save_checkpoint(tmp_path / "ema.ckpt")
    saved = torch.load(tmp_path / "ema.ckpt", map_location="cpu", weights_only=True)
    for key, value in saved["state_dict"].items():
        if not value.is_floating_point():
            continue
        expected = trained.values[0][key].double()
        for step in trained.values[1:]:
            expected = 0.8 * expected + 0.2 * step[key].double()
        torch.testing.assert_close(value.double(), expected, rtol=1e-5, atol=1e-7, msg=key)
    moved = [k for k in saved["state_dict"] if not torch.equal(saved["state_dict"][k], trained.values[-1][k])]
    assert moved  # the averaged weights are not the last trained ones
    loaded = vae_zoo.load(
        tmp_path / "ema.ckpt"
    ).state_dict()  # what the Python API, eval.py and sample.py read
    assert all(torch.equal(loaded[k], v) for k, v in saved["state_dict"].items())


def test_a_run_with_weight_averaging_evaluates_the_average_and_resumes_exactly(make_cfg, tmp_path):
    run = (*TINY, *EMA, "trainer.limit_train_batches=6", "callbacks=default", "callbacks.image_grids=null")
    straight = train(make_cfg(*run, "trainer.max_epochs=2", output_dir=tmp_path / "straight"))
    train(make_cfg(*run, "trainer.max_epochs=1", output_dir=tmp_path / "resumed"))
    resumed = train(make_cfg(*run, "trainer.max_epochs=2", "ckpt_path=last", output_dir=tmp_path / "resumed"))
    assert {k: v for k, v in resumed.items() if "/" in k} == {k: v for k, v in straight.items() if "/" in k}
    checkpoint = torch.load(resumed["checkpoint"], map_location="cpu", weights_only=True)
    assert "current_model_state" in checkpoint  # the trained weights beside the averaged state_dict
    written = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    assert written["test/elbo"] == resumed["test/elbo"]


def test_weight_averaging_in_a_pack_is_each_jobs_own_and_resumes_exactly(make_cfg, tmp_path):
    """A pack of one with weight averaging writes the unpacked run's metrics and averaged checkpoint bit for
    bit; a pack of two resumed after one epoch ends with the metrics of the pack never stopped."""
    from vae_zoo.packing.train_pack import PackJob, train_pack

    run = (*TINY, *EMA, "trainer.limit_train_batches=6", "callbacks=default", "callbacks.image_grids=null")
    alone = train(make_cfg(*run, "trainer.max_epochs=1", output_dir=tmp_path / "alone"))
    (packed,) = train_pack([PackJob(make_cfg(*run, "trainer.max_epochs=1", output_dir=tmp_path / "packed"))])
    assert {k: v for k, v in packed.items() if "/" in k} == {k: v for k, v in alone.items() if "/" in k}
    saved = [torch.load(r["checkpoint"], map_location="cpu", weights_only=True) for r in (alone, packed)]
    for weights in ("state_dict", "current_model_state"):
        assert all(torch.equal(saved[1][weights][k], v) for k, v in saved[0][weights].items()), weights

    def jobs(epochs: int, directory: str, *extra: str) -> list[PackJob]:
        return [
            PackJob(
                make_cfg(
                    *run,
                    f"seed={s}",
                    f"trainer.max_epochs={epochs}",
                    *extra,
                    output_dir=tmp_path / f"{directory}{s}",
                )
            )
            for s in (0, 1)
        ]

    straight = train_pack(jobs(2, "straight"))
    train_pack(jobs(1, "resumed"))
    resumed = train_pack(jobs(2, "resumed", "ckpt_path=last"))
    for result, expected in zip(resumed, straight):
        assert {k: v for k, v in result.items() if "/" in k} == {
            k: v for k, v in expected.items() if "/" in k
        }
