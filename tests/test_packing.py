"""Packed training (``vae_zoo.packing``): N models of one architecture in one module, each trained as its
unpacked run would be. Deterministic, on the CPU, tiny models on real MNIST."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from torch import nn

from tests.conftest import TINY
from tests.fixtures.counting_prior import CountingPrior
from vae_zoo.cli import build_datamodule_and_model, build_trainer, reseed
from vae_zoo.errors import ConfigError
from vae_zoo.estimators.estimator import Cost
from vae_zoo.flows.iaf import MaskedLinear
from vae_zoo.packing.pack import pack, unpacked_state_dict
from vae_zoo.packing.packed_conv import PackedConv
from vae_zoo.packing.packed_linear import PackedLinear
from vae_zoo.packing.packed_vae import PackedVAE
from vae_zoo.packing.per_model_settings import PerModelSettings
from vae_zoo.packing.train_pack import PackJob, build_pack


class Losses(pl.Callback):
    """Every step's loss: the packed module's N losses, or the unpacked run's one."""

    def __init__(self) -> None:
        self.values: list[torch.Tensor] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.values.append(
            module.losses.clone() if isinstance(module, PackedVAE) else module.step_output.loss
        )


def fit(cfg, module, datamodule) -> torch.Tensor:
    trainer = build_trainer(cfg, logging=False)
    losses = Losses()
    trainer.callbacks.append(losses)
    trainer.fit(module, datamodule=datamodule)
    return torch.stack(losses.values).reshape(len(losses.values), -1)


def unpacked_losses(cfg) -> torch.Tensor:
    reseed(cfg)
    datamodule, vae = build_datamodule_and_model(cfg)
    return fit(cfg, vae, datamodule)[:, 0]


def test_a_packed_linear_layer_computes_each_models_layer():
    torch.manual_seed(0)
    layers = [nn.Linear(6, 5) for _ in range(3)]
    packed = PackedLinear.stack(layers)
    x = torch.randn(4, 3 * 7, 6)  # 4 sample dims' worth, 3 models of 7 rows each
    y = packed(x)
    for n, layer in enumerate(layers):
        torch.testing.assert_close(
            y[:, 7 * n : 7 * (n + 1)], layer(x[:, 7 * n : 7 * (n + 1)]), rtol=1e-6, atol=1e-6
        )
    mask = (torch.rand(5, 6) > 0.5).float()
    masked = [MaskedLinear(6, 5, mask) for _ in range(2)]
    y = PackedLinear.stack(masked)(x[0, :14])
    for n, layer in enumerate(masked):
        torch.testing.assert_close(
            y[7 * n : 7 * (n + 1)], layer(x[0, 7 * n : 7 * (n + 1)]), rtol=1e-6, atol=1e-6
        )


@pytest.mark.parametrize(
    "conv",
    [
        lambda: nn.Conv2d(4, 6, kernel_size=4, stride=2, padding=1),
        lambda: nn.Conv2d(4, 6, kernel_size=(2, 3), groups=2, bias=False),
        lambda: nn.ConvTranspose2d(4, 6, kernel_size=4, stride=2, padding=1, output_padding=1),
    ],
)
def test_a_packed_convolution_computes_each_models_layer_in_both_forms(conv):
    """The per-model form (the CPU's) is each model's own layer bit for bit, outputs and weight gradients;
    the grouped form (CUDA's) computes the same numbers as one convolution."""
    torch.manual_seed(0)
    convs = [conv() for _ in range(3)]
    packed = PackedConv.stack(convs)
    x = torch.randn(3 * 5, 4, 9, 8)  # 3 models of 5 images each
    own = [layer(part) for layer, part in zip(convs, x.chunk(3))]
    torch.autograd.backward(own, [torch.ones_like(y) for y in own])
    per_model = packed.per_model(x)
    per_model.sum().backward()
    assert torch.equal(per_model, torch.cat(own)) and torch.equal(packed(x), per_model)
    assert torch.equal(packed.weight.grad, torch.stack([layer.weight.grad for layer in convs]))
    weight_grad, packed.weight.grad = packed.weight.grad, None
    grouped = packed.grouped(x)
    grouped.sum().backward()
    torch.testing.assert_close(grouped, per_model, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(packed.weight.grad, weight_grad, rtol=1e-5, atol=1e-5)


#: the default model (also in bf16 mixed precision), and the components with state each model holds its own
#: of (running baselines, temperatures, networks, pseudo-inputs)
PACK_OF_ONE = {
    "pathwise": (),
    "pathwise_bf16_mixed": ("trainer.precision=bf16-mixed",),
    "score_function": ("estimator=score_function",),
    "nvil": ("model=bernoulli_vae", "estimator=nvil", "model.estimator.normalise=true"),
    "rebar": ("model=bernoulli_vae", "estimator=rebar"),
    "relax": ("model=bernoulli_vae", "estimator=relax", "model.estimator.hidden=16"),
    "vamp": ("prior=vamp", "model.prior.components=20"),
    "factor_vae": ("discriminator=mlp", "model.discriminator.hidden=[16]", "objective.factor_weight=5"),
    "conditional_vamp": (
        "condition=label",
        "model.condition.embedding=4",
        "prior=vamp",
        "model.prior.components=20",
    ),
    "semi_supervised": (
        "condition=label",
        "classifier=mlp",
        "model.classifier.hidden=[16]",
        "objective=semi_supervised",
        "data.labels=100",
        "data.labelled_per_batch=8",
    ),
}


@pytest.mark.parametrize("component", PACK_OF_ONE)
def test_a_pack_of_one_is_its_unpacked_run(component, make_cfg):
    """50 steps: the losses to 1e-6 relative (bit for bit on this CPU), the final metrics to 1e-5."""
    cfg = make_cfg(
        *TINY, *PACK_OF_ONE[component], "+trainer.max_steps=50", "seed=3", "trainer.gradient_clip_val=5"
    )
    reseed(cfg)
    datamodule, vae = build_datamodule_and_model(cfg)
    trainer = build_trainer(cfg, logging=False)
    losses = Losses()
    trainer.callbacks.append(losses)
    trainer.fit(vae, datamodule=datamodule)
    alone = torch.stack(losses.values)
    reseed(cfg)
    expected = trainer.test(vae, datamodule=datamodule, verbose=False)[0]

    datamodule, packed = build_pack([PackJob(cfg)])
    trainer = build_trainer(cfg, logging=False)
    losses = Losses()
    trainer.callbacks.append(losses)
    trainer.fit(packed, datamodule=datamodule)
    torch.testing.assert_close(torch.stack(losses.values)[:, 0], alone, rtol=1e-6, atol=0)
    reseed(cfg)
    trainer.test(packed, datamodule=datamodule, verbose=False)
    for name, value in expected.items():
        assert packed.metrics["test"][0][name] == pytest.approx(value, rel=1e-5), name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_a_pack_on_cuda_trains_each_model_and_a_pack_of_one_is_its_unpacked_run(precision, make_cfg):
    """On the GPU, 20 steps: a pack of one follows its unpacked run (to 1e-4 relative in 32-bit: the batched
    products may sum in another order; 2e-2 in bf16), and a pack of four seeds trains every model (finite
    losses, each model's last five below its first five)."""
    gpu = ("trainer=gpu", f"trainer.precision={precision}", "+trainer.max_steps=20")
    cfg = make_cfg(*TINY, *gpu, "seed=3")
    alone = unpacked_losses(cfg)
    datamodule, packed = build_pack([PackJob(cfg)])
    tolerance = 1e-4 if precision == "32-true" else 2e-2
    torch.testing.assert_close(fit(cfg, packed, datamodule)[:, 0], alone, rtol=tolerance, atol=0)
    cfgs = [make_cfg(*TINY, *gpu, f"seed={seed}") for seed in range(4)]
    datamodule, packed = build_pack([PackJob(cfg) for cfg in cfgs])
    losses = fit(cfgs[0], packed, datamodule)
    assert losses.shape == (20, 4) and torch.isfinite(losses).all()
    assert (losses[-5:].mean(0) < losses[:5].mean(0)).all()


#: a learning-rate schedule: cosine by epoch; plateau halving at every epoch val/elbo improved by less than 3 %
#: on its best
SCHEDULES = {
    "cosine": ("scheduler=cosine",),
    "plateau": ("scheduler=plateau", "model.scheduler.patience=0", "+model.scheduler.threshold=0.03"),
}
SCHEDULED = (*TINY, "trainer.max_epochs=5", "+trainer.limit_train_batches=4")


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.filterwarnings("error:Detected call of:UserWarning")  # the scheduler before its optimizer
def test_a_pack_of_one_with_a_learning_rate_schedule_is_its_unpacked_run(schedule, make_cfg):
    """5 epochs of 4 steps: the losses to 1e-6 relative, and the scheduler ends where the unpacked run's ends
    (its rates, step count and, for a plateau, its best value and bad epochs)."""
    cfg = make_cfg(*SCHEDULED, *SCHEDULES[schedule], "seed=3")
    reseed(cfg)
    datamodule, vae = build_datamodule_and_model(cfg)
    alone = fit(cfg, vae, datamodule)
    expected = vae.lr_schedulers().state_dict()
    assert expected["_last_lr"][0] < 1e-3  # the schedule moved the rate
    datamodule, packed = build_pack([PackJob(cfg)])
    torch.testing.assert_close(fit(cfg, packed, datamodule), alone, rtol=1e-6, atol=0)
    state = packed.lr_schedulers().schedulers[0].state_dict()
    assert state.pop("best", 0.0) == pytest.approx(expected.pop("best", 0.0), rel=1e-6)  # a plateau's
    assert state == expected


def test_each_model_of_a_pack_steps_its_plateau_schedule_on_its_own_validation_value(make_cfg):
    """Two seeds at two learning rates: model ``n``'s ReduceLROnPlateau ends as one stepped on model ``n``'s
    val/elbo of each epoch, and the two models' rates part."""
    cfgs = [
        make_cfg(*SCHEDULED, *SCHEDULES["plateau"], f"seed={seed}", f"model.optimizer.lr={lr}")
        for seed, lr in ((0, 1e-3), (1, 1e-2))
    ]
    datamodule, packed = build_pack([PackJob(cfg) for cfg in cfgs])
    values = []

    class Validation(pl.Callback):
        def on_validation_end(self, trainer, module) -> None:
            if not trainer.sanity_checking:
                values.append([metrics["val/elbo"] for metrics in module.metrics["val"]])

    trainer = build_trainer(cfgs[0], logging=False)
    trainer.callbacks.append(Validation())
    trainer.fit(packed, datamodule=datamodule)
    assert len(values) == 5
    rates = []
    for n, lr in enumerate((1e-3, 1e-2)):
        replay = torch.optim.lr_scheduler.ReduceLROnPlateau(
            torch.optim.SGD([torch.zeros(1)], lr=lr), patience=0, factor=0.5, threshold=0.03
        )
        for epoch in values:
            replay.step(epoch[n])
        state = packed.lr_schedulers().schedulers[n].state_dict()
        assert {k: state[k] for k in ("best", "num_bad_epochs", "_last_lr", "last_epoch")} == {
            k: replay.state_dict()[k] for k in ("best", "num_bad_epochs", "_last_lr", "last_epoch")
        }
        rates.append(state["_last_lr"][0] / lr)
    assert rates[0] != rates[1]


def test_each_model_of_a_pack_follows_its_own_jobs_schedule_settings(make_cfg):
    """Cosine schedules of 2 and 5 epochs (``model.scheduler.T_max``) in one pack: after 5 epochs each
    model's rate is its own schedule's (the first, whose cosine has a period of 4 epochs, at half its initial
    rate; the second at zero)."""
    cfgs = [make_cfg(*SCHEDULED, "scheduler=cosine", f"model.scheduler.T_max={t}") for t in (2, 5)]
    datamodule, packed = build_pack([PackJob(cfg) for cfg in cfgs])
    fit(cfgs[0], packed, datamodule)
    states = [scheduler.state_dict() for scheduler in packed.lr_schedulers().schedulers]
    assert [(state["T_max"], state["last_epoch"]) for state in states] == [(2, 5), (5, 5)]
    assert [state["_last_lr"][0] for state in states] == pytest.approx([5e-4, 0.0], abs=1e-12)


#: early stopping once val/elbo has not improved by 1000 nats for one validation: after the second epoch
STOPS_EARLY = (
    "+callbacks@callbacks.early_stopping=early_stopping",
    "callbacks.early_stopping.patience=1",
    "callbacks.early_stopping.min_delta=1000",
)
#: early stopping with a patience longer than the run
NEVER_STOPS = ("+callbacks@callbacks.early_stopping=early_stopping", "callbacks.early_stopping.patience=100")


def test_a_jobs_schedule_and_early_stopping_resume_packed_as_they_resume_unpacked(make_cfg, tmp_path):
    """A pack of one with a plateau schedule and early stopping trains 2 epochs; its job directory, resumed to
    4 epochs packed and (its twin, trained the same way) unpacked by ``train()``: the two ``last.ckpt`` hold the same scheduler state,
    with the two steps Lightning's resume loses lost in both (epoch 2's, taken after its checkpoint, and epoch
    3's, the first resumed epoch's), the same early-stopping state (3 validations without improvement), and
    the same checkpoint record (with ``mode=max`` the best is the first epoch's, kept across the resume)."""

    from vae_zoo.cli import train
    from vae_zoo.packing.train_pack import train_pack

    waits = (*NEVER_STOPS, "callbacks.early_stopping.min_delta=1000")  # counts validations, never stops
    worst = "callbacks.model_checkpoint.mode=max"  # "best": the highest val/elbo, an epoch before the resume
    common = (*SCHEDULED, *SCHEDULES["plateau"], *waits, "callbacks=default", worst, "seed=3")
    packed_dir, alone_dir = tmp_path / "packed", tmp_path / "alone"
    for directory in (packed_dir, alone_dir):  # the same 2 epochs packed, twice
        train_pack([PackJob(make_cfg(*common, "trainer.max_epochs=2", output_dir=directory))])
    resumed = (*common, "trainer.max_epochs=4", "ckpt_path=last")
    train_pack([PackJob(make_cfg(*resumed, output_dir=packed_dir))])
    train(make_cfg(*resumed, output_dir=alone_dir))
    packed, alone = (
        torch.load(d / "checkpoints" / "last.ckpt", weights_only=False) for d in (packed_dir, alone_dir)
    )
    assert packed["global_step"] == alone["global_step"] == 16
    (expected,), (state,) = alone["lr_schedulers"], packed["lr_schedulers"]
    assert state.pop("best") == pytest.approx(expected.pop("best"), rel=1e-6)
    assert state == expected and expected["last_epoch"] == 2  # steps after epochs 1 and 4 of 4
    key = next(key for key in alone["callbacks"] if key.startswith("EarlyStopping"))
    assert packed["callbacks"][key] == alone["callbacks"][key] and alone["callbacks"][key]["wait_count"] == 3
    key = next(key for key in alone["callbacks"] if key.startswith("ModelCheckpoint"))
    best = "epoch_000.ckpt"  # the highest val/elbo is the first epoch's: the resume keeps it as the best
    for directory, checkpoint in ((packed_dir, packed), (alone_dir, alone)):
        record = checkpoint["callbacks"][key]
        assert record["best_model_path"] == str(directory / "checkpoints" / best)
        assert record["last_model_path"] == str(directory / "checkpoints" / "last.ckpt")
        # without the record the resumed run took its first validation for the best, a second file beside it
        assert {p.name for p in (directory / "checkpoints").iterdir()} == {best, "last.ckpt"}
    assert float(packed["callbacks"][key]["best_model_score"]) == pytest.approx(
        float(alone["callbacks"][key]["best_model_score"]), rel=1e-6
    )


def test_each_model_of_a_pack_stops_early_on_its_own_validation_values(make_cfg, tmp_path, capsys):
    """A pack of one stops where its unpacked run stops, also when ``trainer.min_epochs`` holds it back
    (``metrics.json`` equal: epochs, step, metrics; the stopper's state in ``last.ckpt`` equal); in a pack of
    two, the model whose job stops early after 2 of 5 epochs stops there (its step, its checkpoints, its final
    test on its weights then), the other trains on."""
    import json

    from vae_zoo.cli import train
    from vae_zoo.packing.train_pack import train_pack

    common = (*SCHEDULED, "callbacks=default", "callbacks.image_grids=null", "seed=3")
    for least, epochs in ((None, 2), (4, 4)):  # trainer.min_epochs: stopped when due, or not before
        at_least = () if least is None else (f"+trainer.min_epochs={least}",)
        runs, states = [], []
        for name, fit_run in (("alone", train), ("packed", lambda cfg: train_pack([PackJob(cfg)]))):
            directory = tmp_path / f"{name}{least}"
            fit_run(make_cfg(*common, *STOPS_EARLY, *at_least, output_dir=directory))
            runs.append(json.loads((directory / "metrics.json").read_text()))
            states.append(
                torch.load(directory / "checkpoints" / "last.ckpt", weights_only=False)["callbacks"]
            )
        assert runs[0]["epochs"] == epochs and runs[0]["global_step"] == 4 * epochs
        for name, value in runs[0].items():
            expected = pytest.approx(value, rel=1e-6) if isinstance(value, float) else value
            assert name == "checkpoint" or runs[1][name] == expected, name
        key = next(key for key in states[0] if key.startswith("EarlyStopping"))
        assert states[1][key] == states[0][key]

    dirs = [tmp_path / "stops", tmp_path / "goes_on"]
    jobs = [
        PackJob(make_cfg(*common, *STOPS_EARLY, output_dir=dirs[0])),
        PackJob(make_cfg(*common, *NEVER_STOPS, "seed=4", output_dir=dirs[1])),
    ]
    capsys.readouterr()
    stops, goes_on = train_pack(jobs)
    printed = capsys.readouterr().out
    assert (stops["epochs"], stops["global_step"], goes_on["epochs"], goes_on["global_step"]) == (2, 8, 5, 20)
    last = torch.load(dirs[0] / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["global_step"] == 8 and last["callbacks"][key]["wait_count"] == 1
    best = float(last["callbacks"][key]["best_score"])
    reason = f"Monitored metric val/elbo did not improve in the last 1 records. Best score: {best:.3f}."
    assert f"packed: {dirs[0]} stops early after epoch 1: {reason} Signaling Trainer to stop.\n" in printed
    assert printed.count("stops early") == 1


def test_a_pack_resumes_with_its_early_stopped_job_stopped_and_the_others_exactly(make_cfg, tmp_path):
    """Of two jobs trained 3 epochs, the first stopped after 2; both resumed with ``ckpt_path=last`` to 5
    epochs: the first keeps its stop (epochs, step, test metrics on its best checkpoint), the second ends as in
    a pack of 5 epochs straight."""
    from vae_zoo.packing.train_pack import train_pack

    common = (*SCHEDULED, "callbacks=default", "callbacks.image_grids=null")
    settings = ((*STOPS_EARLY, "seed=3"), (*NEVER_STOPS, "seed=4"))

    def jobs(name: str, *more: str) -> list[PackJob]:
        return [
            PackJob(make_cfg(*common, *own, *more, output_dir=tmp_path / name / str(n)))
            for n, own in enumerate(settings)
        ]

    stopped, _ = train_pack(jobs("resumed", "trainer.max_epochs=3"))
    kept, resumed = train_pack(jobs("resumed", "trainer.max_epochs=5", "ckpt_path=last"))
    _, straight = train_pack(jobs("straight", "trainer.max_epochs=5"))
    assert (kept["epochs"], kept["global_step"]) == (stopped["epochs"], stopped["global_step"]) == (2, 8)
    # (its final validation draws from the stream where training left it: the test is reseeded, as eval.py's)
    assert {k: v for k, v in kept.items() if "test/" in k} == {
        k: v for k, v in stopped.items() if "test/" in k
    }
    assert (resumed["epochs"], resumed["global_step"]) == (5, 20)
    assert {k: v for k, v in resumed.items() if "/" in k} == {k: v for k, v in straight.items() if "/" in k}


def test_model_n_starts_from_its_seeds_weights_and_sees_its_seeds_batches(make_cfg):
    seeds = (3, 5, 7)
    cfgs = [make_cfg(*TINY, f"seed={seed}") for seed in seeds]
    datamodule, packed = build_pack([PackJob(cfg) for cfg in cfgs])
    datamodule.setup("fit")
    batches = list(zip(range(2), datamodule.train_dataloader()))
    for n, cfg in enumerate(cfgs):
        reseed(cfg)
        alone_data, alone = build_datamodule_and_model(cfg)
        state = unpacked_state_dict(packed.model, n)
        assert state.keys() == alone.state_dict().keys()
        assert all(torch.equal(state[key], value) for key, value in alone.state_dict().items())
        alone_data.setup("fit")
        for (_, batch), own in zip(batches, alone_data.train_dataloader()):
            assert torch.equal(batch[32 * n : 32 * (n + 1)], own)


def test_no_cross_talk_a_diverging_model_changes_nothing_of_the_others(make_cfg):
    """Model 3 of four diverges (learning rate 1e30, its guard stops it): the losses of models 0-2 are bit
    for bit those of the pack where model 3 trains normally, with every model clipped by its own norm."""
    common = (*TINY, "+trainer.max_steps=30", "trainer.gradient_clip_val=1")
    calm = [make_cfg(*common, f"seed={seed}") for seed in range(4)]
    wild = [*calm[:3], make_cfg(*common, "seed=3", "model.optimizer.lr=1e30")]
    datamodule, packed = build_pack([PackJob(cfg) for cfg in calm])
    calm_losses = fit(calm[0], packed, datamodule)
    datamodule, packed = build_pack([PackJob(cfg) for cfg in wild])
    stopped_at = {}

    class Watch(pl.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            if 3 in module.failures and not stopped_at:
                stopped_at["step"] = trainer.global_step
                stopped_at["weights"] = unpacked_state_dict(module.model, 3)

    trainer = build_trainer(wild[0], logging=False)
    losses = Losses()
    trainer.callbacks += [losses, Watch()]
    trainer.fit(packed, datamodule=datamodule)
    wild_losses = torch.stack(losses.values)
    assert torch.equal(wild_losses[:, :3], calm_losses[:, :3])
    assert list(packed.failures) == [3]
    assert packed.failures[3].startswith("non-finite ")
    assert "model.nonfinite=skip" in packed.failures[3]
    assert stopped_at["step"] < 30
    final = unpacked_state_dict(packed.model, 3)
    assert all(torch.equal(final[key], value) for key, value in stopped_at["weights"].items())


@pytest.mark.parametrize(
    "estimator, apart",
    [
        (("model=bernoulli_vae", "estimator=nvil"), "model.optimizer.lr=3e-3"),
        (
            ("model=bernoulli_vae", "estimator=relax", "model.estimator.hidden=16"),
            "model.estimator.temperature=0.2",
        ),
        (("estimator=score_function",), "model.optimizer.lr=3e-3"),
    ],
)
def test_no_cross_talk_each_model_keeps_its_own_estimator_state(estimator, apart, make_cfg):
    """Running baselines moved by each model's own costs, REBAR's temperature and RELAX's network each
    model's own: changing model 1 (its learning rate, or its estimator's initial temperature) leaves model 0's
    losses bit for bit, and model 1's state is its own."""
    common = (*TINY, *estimator, "+trainer.max_steps=15")
    same = [make_cfg(*common, f"seed={seed}") for seed in (0, 1)]
    other = [same[0], make_cfg(*common, "seed=1", apart)]
    datamodule, packed = build_pack([PackJob(cfg) for cfg in same])
    same_losses = fit(same[0], packed, datamodule)
    same_state = unpacked_state_dict(packed.model, 1)
    datamodule, packed = build_pack([PackJob(cfg) for cfg in other])
    other_losses = fit(other[0], packed, datamodule)
    assert torch.equal(other_losses[:, 0], same_losses[:, 0])
    assert not torch.equal(other_losses[:, 1], same_losses[:, 1])
    own = [key for key in same_state if key.startswith("estimator.")]
    moved = [
        key for key in own if not torch.equal(unpacked_state_dict(packed.model, 1)[key], same_state[key])
    ]
    assert moved and set(own) - set(moved) <= {"estimator.baseline_started"}


@pytest.mark.parametrize(
    "estimator", [("estimator=score_function",), ("model=bernoulli_vae", "estimator=nvil")]
)
def test_a_packed_estimators_statistics_move_with_each_models_own_costs(estimator, make_cfg):
    """Two models' statistics stacked, ``(2,)``: updates with the packed batch's costs move each as its
    unpacked estimator moves with its own half of the batch (NVIL's packed baseline network included)."""
    _, packed = build_pack([PackJob(make_cfg(*TINY, *estimator, f"seed={seed}")) for seed in (0, 1)])
    alone = [run.model.estimator for run in packed.runs]
    torch.manual_seed(0)
    x, costs = torch.rand(2 * 5, 1, 28, 28), torch.randn(2 * 5) * 3 + 100
    for _ in range(2):  # the score function's first update starts its baseline, the second averages
        packed.model.estimator.update_statistics(Cost(costs, lambda z: z, x))
        for n, own in enumerate(alone):
            own.update_statistics(Cost(costs[5 * n : 5 * (n + 1)], lambda z: z, x[5 * n : 5 * (n + 1)]))
        for name in packed.model.estimator.per_model_state:
            expected = torch.stack([own.get_buffer(name) for own in alone])
            assert packed.model.estimator.get_buffer(name).shape == (2,)
            torch.testing.assert_close(packed.model.estimator.get_buffer(name), expected, rtol=1e-5, atol=0)


def test_a_component_with_state_of_no_packed_form_is_refused_in_one_line(make_cfg):
    cfg = make_cfg(*TINY)
    models = []
    for _ in range(2):
        _, vae = build_datamodule_and_model(cfg)
        vae.model.prior = CountingPrior()
        models.append(vae.model)
    with pytest.raises(
        ConfigError, match=r"^CountingPrior does not pack yet: its state prior\.served "
    ) as error:
        pack(models)
    assert "\n" not in str(error.value) and "without hydra/launcher=packed" in str(error.value)


def test_each_job_of_a_pack_writes_its_own_run_that_evaluates_and_resumes(make_cfg, tmp_path):
    """Two seeds packed: each job directory gets ordinary checkpoints (last and best, with the job's own
    learning-rate schedule), ``metrics.json`` and its TensorBoard run; ``eval.py`` on the best checkpoint
    reports the job's test metrics exactly, and ``vae_zoo.load`` reads it; ``ckpt_path=last`` resumes the pack
    from the jobs' checkpoints, its schedules where they stood."""
    import json

    import vae_zoo
    from vae_zoo.cli import evaluate
    from vae_zoo.packing.train_pack import train_pack

    short = (
        *TINY,
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=4",
        "logger=tensorboard",
        "callbacks=default",
        "scheduler=cosine",
        "model.scheduler.T_max=2",
    )
    dirs = [tmp_path / f"job{seed}" for seed in (0, 1)]
    jobs = [PackJob(make_cfg(*short, f"seed={seed}", output_dir=d)) for seed, d in zip((0, 1), dirs)]
    results = train_pack(jobs)
    for seed, directory, result in zip((0, 1), dirs, results):
        metrics = json.loads((directory / "metrics.json").read_text())
        assert metrics == result and metrics["seed"] == seed and metrics["global_step"] == 4
        schedules = torch.load(directory / "checkpoints" / "last.ckpt", weights_only=False)["lr_schedulers"]
        assert [(s["T_max"], s["last_epoch"], s["_last_lr"]) for s in schedules] == [(2, 1, [5e-4])]
        assert list((directory / "tensorboard").rglob("events.out.tfevents.*"))
        best = metrics["checkpoint"]
        assert Path(best).is_file() and Path(best).parent == directory / "checkpoints"
        evaluation = (
            f"ckpt_path={best}",
            f"seed={seed}",
            "eval.iw_samples=4",
            "trainer.limit_test_batches=2",
        )
        evaluated = evaluate(make_cfg(*evaluation, output_dir=tmp_path / "eval", config_name="eval"))
        assert {k: evaluated[k] for k in evaluated if k.startswith("test/")} == {
            k: metrics[k] for k in metrics if k.startswith("test/")
        }
        assert vae_zoo.load(best).models == 1
    assert results[0]["test/elbo"] != results[1]["test/elbo"]

    resumed = [
        PackJob(make_cfg(*short, f"seed={seed}", "trainer.max_epochs=2", "ckpt_path=last", output_dir=d))
        for seed, d in zip((0, 1), dirs)
    ]
    straight = [
        PackJob(
            make_cfg(*short, f"seed={seed}", "trainer.max_epochs=2", output_dir=tmp_path / f"straight{seed}")
        )
        for seed in (0, 1)
    ]
    for result, expected in zip(train_pack(resumed), train_pack(straight)):
        assert result["global_step"] == 8 and result["epochs"] == 2
        assert {k: v for k, v in result.items() if "/" in k} == {
            k: v for k, v in expected.items() if "/" in k
        }


def test_each_job_of_a_pack_draws_its_own_grids_gradient_variance_and_latent_maps(make_cfg, tmp_path, capsys):
    """Image grids every validation epoch, the encoder gradient's variance every 2 steps, and (a 2-d latent)
    the latent maps after the final test: each job's, from its own model, in its own TensorBoard run and
    directory, as its unpacked run draws them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from vae_zoo.packing.train_pack import train_pack

    short = (*TINY, "model.latent.dim=2", "trainer.max_epochs=1", "trainer.limit_train_batches=4")
    short += ("callbacks=default", "logger=tensorboard", "callbacks.latent_maps.num_points=200")
    short += (
        "+callbacks@callbacks.gradient_variance=gradient_variance",
        "callbacks.gradient_variance.every_n_steps=2",
    )
    short += ("callbacks.gradient_variance.draws=3", "callbacks.gradient_variance.images=20")
    dirs = [tmp_path / f"job{seed}" for seed in (0, 1)]
    train_pack([PackJob(make_cfg(*short, f"seed={s}", output_dir=d)) for s, d in zip((0, 1), dirs)])
    assert "do not run in a pack" not in capsys.readouterr().out
    samples = []
    for directory in dirs:
        (run,) = (directory / "tensorboard").iterdir()
        events = EventAccumulator(str(run), size_guidance={"images": 0}).Reload()
        assert {"images/reconstructions", "images/samples"} <= set(events.Tags()["images"])
        variance = events.Scalars("train/grad_log10_variance")
        assert [e.step for e in variance] == [0, 2] and all(math.isfinite(e.value) for e in variance)
        samples.append(events.Images("images/samples")[-1].encoded_image_string)
        assert (directory / "latent_manifold.png").is_file()
        assert (directory / "latent_posterior_locations.png").is_file()
    assert samples[0] != samples[1]  # each job's grid is its own model's


def test_a_pack_of_ones_tensorboard_run_holds_the_unpacked_runs_epoch_means(make_cfg, tmp_path):
    """``train/<name>_epoch`` (the epoch means of the training loss and terms), ``train/lr`` (a cosine
    schedule's rate, every step) and ``val/elbo`` in a packed job's TensorBoard run are its unpacked
    run's, two epochs of five steps."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from vae_zoo.cli import train
    from vae_zoo.packing.train_pack import train_pack

    short = (*TINY, "trainer.max_epochs=2", "trainer.limit_train_batches=5", "logger=tensorboard")
    short += (
        "callbacks=default",
        "callbacks.image_grids=null",
        "scheduler=cosine",
        "trainer.log_every_n_steps=1",
    )
    train(make_cfg(*short, output_dir=tmp_path / "alone"))
    train_pack([PackJob(make_cfg(*short, output_dir=tmp_path / "packed"))])
    scalars = []
    for directory in ("alone", "packed"):
        (run,) = (tmp_path / directory / "tensorboard").iterdir()
        events = EventAccumulator(str(run)).Reload()
        names = ("train/loss_epoch", "train/recon_epoch", "train/kl_epoch", "val/elbo", "train/lr")
        scalars.append({name: [(e.step, e.value) for e in events.Scalars(name)] for name in names})
    for name, values in scalars[0].items():
        assert [step for step, _ in scalars[1][name]] == [step for step, _ in values], name
        expected = torch.tensor([value for _, value in values])
        got = torch.tensor([value for _, value in scalars[1][name]])
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=0, msg=name)
    assert [value for _, value in scalars[0]["train/lr"]] == pytest.approx([1e-3] * 5 + [5e-4] * 5)


def test_a_pack_stopped_by_a_signal_saves_every_jobs_step_and_resumes_exactly(make_cfg, tmp_path, capsys):
    """SIGTERM after step 6 of 8 (mid-epoch): the pack stops with one line and exit 143, every job's
    ``last.ckpt`` holds step 6 (the first job's preemption callback, cut into each job's checkpoint), and the
    pack resumed with ``ckpt_path=last`` ends with the metrics of the pack never stopped."""
    from vae_zoo.packing.train_pack import train_pack

    short = (*TINY, "trainer.max_epochs=1", "trainer.limit_train_batches=8", "callbacks=default")
    kill = ("+callbacks.kill._target_=tests.test_reliability.SignalAtStep", "+callbacks.kill.step=6")
    dirs = [tmp_path / f"job{seed}" for seed in (0, 1)]
    with pytest.raises(SystemExit) as stopped:
        train_pack(
            [PackJob(make_cfg(*short, *kill, f"seed={s}", output_dir=d)) for s, d in zip((0, 1), dirs)]
        )
    assert stopped.value.code == 143
    last = dirs[0] / "checkpoints" / "last.ckpt"
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"stopped by SIGTERM at step 6; saved {last} and the same file in each of the pack's other 1 job "
        "directories -- continue the sweep with ckpt_path=last"
    )
    for directory in dirs:
        saved = torch.load(directory / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
        assert saved["global_step"] == 6 and not (directory / "metrics.json").exists()
    resumed = train_pack(
        [PackJob(make_cfg(*short, f"seed={s}", "ckpt_path=last", output_dir=d)) for s, d in zip((0, 1), dirs)]
    )
    straight = train_pack(
        [PackJob(make_cfg(*short, f"seed={s}", output_dir=tmp_path / f"straight{s}")) for s in (0, 1)]
    )
    for result, expected in zip(resumed, straight):
        assert result["global_step"] == 8
        assert {k: v for k, v in result.items() if "/" in k} == {
            k: v for k, v in expected.items() if "/" in k
        }


def _fit_with_settings(
    cfgs, annealed: bool = False, warmed: bool = False, increased: bool = False
) -> tuple[torch.Tensor, PackedVAE, PerModelSettings]:
    """A pack trained with each job's own KL weight (``warmed``: warm-up), (``increased``) capacity increase and
    (``annealed``) temperature schedule."""
    datamodule, packed = build_pack([PackJob(cfg) for cfg in cfgs])
    annealings = [instantiate(cfg.callbacks.temperature) if annealed else None for cfg in cfgs]
    warmups = [instantiate(cfg.callbacks.kl_warmup) if warmed else None for cfg in cfgs]
    increases = [instantiate(cfg.callbacks.capacity) if increased else None for cfg in cfgs]
    callbacks = [[c for c in own if c is not None] for own in zip(warmups, annealings, increases)]
    settings = PerModelSettings(packed.runs, callbacks)
    trainer = build_trainer(cfgs[0], logging=False)
    losses = Losses()
    trainer.callbacks += [settings, losses]
    trainer.fit(packed, datamodule=datamodule)
    return torch.stack(losses.values), packed, settings


def _fit_apart(make_cfg, common, apart: str, **fit) -> tuple[PackedVAE, PerModelSettings]:
    """Two models (seeds 0 and 1) trained as a pack twice, alike and with model 1's ``apart`` override: model 0's
    losses are bit for bit the same in both packs and model 1's are not. The second pack and its settings."""
    same = [make_cfg(*common, f"seed={seed}") for seed in (0, 1)]
    other = [same[0], make_cfg(*common, "seed=1", apart)]
    same_losses, _, _ = _fit_with_settings(same, **fit)
    apart_losses, packed, settings = _fit_with_settings(other, **fit)
    assert torch.equal(apart_losses[:, 0], same_losses[:, 0])
    assert not torch.equal(apart_losses[:, 1], same_losses[:, 1])
    return packed, settings


def test_each_model_of_a_pack_trains_with_its_own_kl_weight_and_nothing_else_changes(make_cfg):
    """Model 3's beta = 0.25 enters its loss alone: its loss is its reconstruction plus 0.25 times its KL, and
    the losses of models 0-2 are bit for bit those of the pack where model 3 has beta = 1."""
    common = (*TINY, "+trainer.max_steps=20")
    calm = [make_cfg(*common, f"seed={seed}") for seed in range(4)]
    light = [*calm[:3], make_cfg(*common, "seed=3", "objective.beta=0.25")]
    calm_losses, _, _ = _fit_with_settings(calm)
    light_losses, packed, _ = _fit_with_settings(light)
    assert torch.equal(light_losses[:, :3], calm_losses[:, :3])
    assert not torch.equal(light_losses[:, 3], calm_losses[:, 3])
    recon, kl = packed.terms["recon"], packed.terms["kl"]
    torch.testing.assert_close(packed.losses, recon + torch.tensor([1, 1, 1, 0.25]) * kl, rtol=1e-6, atol=0)


def test_each_model_of_a_pack_frees_its_own_bits(make_cfg):
    """Free bits 0.5 and 0.25 against 0.5 and 2: model 0's losses are bit for bit the same, model 1's are not, and
    model 1's last loss charges each of its 8 units at least its own 2 nats."""
    common = (*TINY, "+trainer.max_steps=8")
    low = [
        make_cfg(*common, "seed=0", "objective.free_bits=0.5"),
        make_cfg(*common, "seed=1", "objective.free_bits=0.25"),
    ]
    high = [low[0], make_cfg(*common, "seed=1", "objective.free_bits=2")]
    low_losses, _, _ = _fit_with_settings(low)
    high_losses, packed, _ = _fit_with_settings(high)
    assert torch.equal(high_losses[:, 0], low_losses[:, 0]) and not torch.equal(
        high_losses[:, 1], low_losses[:, 1]
    )
    assert packed.objective.free_bits.tolist() == [0.5, 2.0]
    assert packed.losses[1] >= packed.terms["recon"][1] + 2 * 8  # the last step's: every unit charged >= 2


#: a per-model weight of a term of the batch's samples or codes: its setting, two values for model 1 beside model 0's default,
#: and each model's loss from its terms given model 1's value
SAMPLE_TERMS = {
    "total_correlation": (
        "objective.tc_weight",
        (4, 8),
        lambda t, w: t["recon"] + t["kl"] + torch.tensor([0, w - 1]) * t["tc"],
    ),
    "mmd": (
        "objective.mmd_weight",
        (10, 20),
        lambda t, w: t["recon"] + t["kl"] + torch.tensor([0, w]) * t["mmd"],
    ),
    "dip": (  # the diagonal weighed 10 times the off-diagonal (DIP-VAE-I's default)
        "objective.dip_weight",
        (1, 3),
        lambda t, w: (
            t["recon"]
            + t["kl"]
            + torch.tensor([0, w]) * t["dip_off_diagonal"]
            + torch.tensor([0, 10 * w]) * t["dip_diagonal"]
        ),
    ),
}


@pytest.mark.parametrize("term", SAMPLE_TERMS)
def test_each_model_of_a_pack_weighs_its_own_term_of_the_samples(term, make_cfg):
    """Model 1's weight of the total correlation (the MMD, DIP's covariance) at one value and at another, model 0's
    the ELBO's: model 0's losses are bit for bit the same, model 1's are not, and each model's loss is its
    reconstruction plus its KL and its own weight of its own term."""
    setting, (low, high), loss = SAMPLE_TERMS[term]
    common = (*TINY, "+trainer.max_steps=8")
    lows = [make_cfg(*common, "seed=0"), make_cfg(*common, "seed=1", f"{setting}={low}")]
    highs = [lows[0], make_cfg(*common, "seed=1", f"{setting}={high}")]
    low_losses, _, _ = _fit_with_settings(lows)
    high_losses, packed, _ = _fit_with_settings(highs)
    assert torch.equal(high_losses[:, 0], low_losses[:, 0]) and not torch.equal(
        high_losses[:, 1], low_losses[:, 1]
    )
    assert getattr(packed.objective, setting.rpartition(".")[2]).tolist()[1] == high
    torch.testing.assert_close(packed.losses, loss(packed.terms, high), rtol=1e-5, atol=1e-4)


def test_each_model_of_a_pack_weighs_its_own_discriminators_total_correlation(make_cfg):
    """FactorVAE's weight 5 and 5 or 20 (two discriminators, each on its own model's samples): model 0's losses are bit
    for bit the same, model 1's are not, and each model's loss is its ELBO plus its own weight of its logit's mean."""
    common = (*TINY, "+trainer.max_steps=8", "discriminator=mlp", "model.discriminator.hidden=[16]")
    packed, _ = _fit_apart(make_cfg, (*common, "objective.factor_weight=5"), "objective.factor_weight=20")
    weight = torch.tensor([5.0, 20.0])
    assert packed.objective.factor_weight.tolist() == weight.tolist()
    expected = packed.terms["elbo"] + weight * packed.terms["factor_tc"]
    torch.testing.assert_close(packed.losses, expected, rtol=1e-6, atol=1e-4)


def test_each_model_of_a_pack_mixes_its_own_share_of_the_elbo_into_its_bound(make_cfg):
    """IWAE (k = 3) mixed with the ELBO by 0.25 and by 0.25 or 0.75 (CIWAE): model 0's losses are bit for bit the
    same, model 1's are not, and each model's loss is its own mix of its bound and its ELBO."""
    common = (*TINY, "+trainer.max_steps=6", "objective=iwae", "objective.k=3", "objective.elbo_weight=0.25")
    packed, _ = _fit_apart(make_cfg, common, "objective.elbo_weight=0.75")
    weight = torch.tensor([0.25, 0.75])
    assert packed.objective.elbo_weight.tolist() == weight.tolist()
    expected = (1 - weight) * packed.terms["iwae_3"] + weight * packed.terms["elbo"]
    torch.testing.assert_close(packed.losses, expected, rtol=1e-6, atol=1e-4)


def test_each_model_of_a_pack_warms_up_on_its_own_cycle(make_cfg):
    """KL warm-ups of 4 steps, model 1's cyclical with a period of 5: at the last of 12 steps (step 11) each model's
    beta is its own schedule's, and model 0's losses do not depend on model 1's cycle."""
    common = (*TINY, "+trainer.max_steps=12", "+callbacks@callbacks.kl_warmup=kl_warmup")
    common += ("callbacks.kl_warmup.steps=4",)
    _, settings = _fit_apart(make_cfg, common, "callbacks.kl_warmup.period=5", warmed=True)
    assert settings.values["kl_weight"] == [1.0, 0.25]  # min(1, 11 / 4), min(1, (11 mod 5) / 4)


def test_each_model_of_a_pack_raises_its_own_capacity(make_cfg):
    """Capacity increases to 2 and to 2 or 8 nats over 4 steps (gamma = 50): at the last of 8 steps each model's
    capacity is its own schedule's, model 0's losses do not depend on model 1's, and each model's loss is its
    reconstruction plus 50 times its KL's distance from its own capacity."""
    common = (
        *TINY,
        "+trainer.max_steps=8",
        "objective.capacity_weight=50",
        "+callbacks@callbacks.capacity=capacity",
    )
    common += ("callbacks.capacity.steps=4", "callbacks.capacity.capacity=2")
    packed, settings = _fit_apart(make_cfg, common, "callbacks.capacity.capacity=8", increased=True)
    assert settings.values["capacity"] == [2.0, 8.0]
    capacity = torch.tensor([2.0, 8.0])
    expected = packed.terms["recon"] + 50 * (packed.terms["kl"] - capacity).abs()
    torch.testing.assert_close(packed.losses, expected, rtol=1e-5, atol=1e-4)


def test_each_model_of_a_semi_supervised_pack_weighs_its_labels_with_its_own_alpha(make_cfg):
    """Model 1's ``objective.alpha`` = 0: its loss lacks its labelled images' cross-entropy, and model 0's losses
    are bit for bit those of the pack where both have the default alpha (models with several rows per image)."""
    common = (*TINY, *PACK_OF_ONE["semi_supervised"], "+trainer.max_steps=6")
    packed, _ = _fit_apart(make_cfg, common, "objective.alpha=0")
    assert packed.objective.alpha.tolist() == [50.0, 0.0]
    # model 1's loss is its bound alone: its elbo term (beta = 1; the surrogate adds 0 to the value)
    torch.testing.assert_close(packed.losses[1], packed.terms["elbo"][1], rtol=1e-6, atol=0)


def test_each_model_of_a_pack_anneals_its_own_temperature(make_cfg):
    """Two categorical models, tau0 = 1 and 2 (exponential schedule, re-evaluated every 5 steps): each step
    every model relaxes at its own schedule's tau, and model 0's losses do not depend on model 1's."""
    nets = tuple(o for o in TINY if not o.startswith("model.latent."))
    common = (*nets, "model=gumbel_vae", "+trainer.max_steps=12", "callbacks.temperature.every_n_steps=5")
    common += ("callbacks.temperature.rate=0.05", "callbacks.temperature.tau_min=0.1")
    packed, settings = _fit_apart(make_cfg, common, "callbacks.temperature.tau0=2.0", annealed=True)
    last = 11  # the step of the last batch
    expected = [annealing.temperature(last) for annealing in settings.annealings]
    assert settings.values["temperature"] == expected and expected[0] != expected[1]
    assert packed.model.estimator.temperature.tolist() == pytest.approx(expected, rel=1e-6)  # one per model


def test_an_error_of_the_whole_pack_is_every_jobs_one_line(make_cfg, tmp_path):
    """A KL warm-up beside an objective without a KL weight stops the pack at its start: each job gets the
    one line an unpacked run prints, and no job directory gets metrics."""
    from vae_zoo.packing.train_pack import train_pack

    overrides = (*TINY, "objective=iwae", "+callbacks@callbacks.kl_warmup=kl_warmup")
    jobs = [
        PackJob(make_cfg(*overrides, f"seed={seed}", output_dir=tmp_path / f"job{seed}")) for seed in (0, 1)
    ]
    results = train_pack(jobs)
    assert all(isinstance(result, ConfigError) for result in results)
    assert str(results[0]).startswith("callbacks.kl_warmup needs an objective with a KL weight")
    assert not list(tmp_path.rglob("metrics.json"))


def test_a_pack_refuses_to_save_checkpoints_outside_its_jobs_directories(make_cfg, tmp_path):
    """Each job's periodic and preemption checkpoints go to its own directory: a dirpath outside the first
    job's is every job's one line before training, and nothing is written there."""
    from vae_zoo.errors import VaeZooError
    from vae_zoo.packing.train_pack import train_pack

    overrides = (
        *TINY,
        "callbacks=default",
        f"callbacks.periodic_checkpoint.dirpath={tmp_path / 'elsewhere'}",
    )
    jobs = [PackJob(make_cfg(*overrides, f"seed={s}", output_dir=tmp_path / f"job{s}")) for s in (0, 1)]
    results = train_pack(jobs)
    assert all(isinstance(result, VaeZooError) for result in results)
    assert str(results[0]).startswith("a pack writes each job's checkpoints in its own directory, and ")
    assert "\n" not in str(results[0]) and not (tmp_path / "elsewhere").exists()
