"""Conditional VAEs (``condition=label``): q(z|x, y), p(x|z, y), on real MNIST labels."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import component, run_script

import vae_zoo
from vae_zoo.cli import build_datamodule_and_model, build_trainer, reseed
from vae_zoo.conditions.label import LabelCondition
from vae_zoo.data.mnist import MNISTDataModule
from vae_zoo.errors import ConfigError
from vae_zoo.probabilistic_model import ProbabilisticModel
from vae_zoo.saved_run import read_saved_run

SMALL = (
    "model.encoder.hidden=[64]",
    "model.decoder.hidden=[64]",
    "model.latent.dim=2",
    "data.batch_size=64",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=4",
    "data.eval_batch_size=250",
    "eval.iw_samples=4",
    "trainer.accelerator=cpu",
)
# a run as users start it: checkpoints, image grids and TensorBoard (the callbacks and logger by default)
FAST = (*SMALL, "trainer.max_epochs=1", "+trainer.limit_train_batches=5")


def test_the_label_is_a_one_hot_vector_or_a_learned_embedding():
    one_hot = LabelCondition(classes=4)
    assert torch.equal(one_hot(torch.tensor([2, 0])), torch.tensor([[0.0, 0, 1, 0], [1, 0, 0, 0]]))
    embedded = LabelCondition(classes=4, embedding=3)
    assert embedded.out_features == 3
    # the embedding is nn.Embedding's lookup: row y of the table (column y of the linear map)
    torch.testing.assert_close(embedded(torch.tensor([1, 3])), embedded.embed.weight[:, [1, 3]].T)
    with pytest.raises(ConfigError, match=r"at least 2 classes"):
        LabelCondition(classes=1)


def test_each_batch_carries_its_own_images_labels(data_dir):
    datamodule = MNISTDataModule(data_dir, batch_size=16, binarize="none")
    datamodule.serve_labels()
    datamodule.setup()
    batches = datamodule.train_dataloader()
    order = batches.shard_indices()[:16]
    x, y = next(iter(batches))
    assert torch.equal((x * 255).round().to(torch.uint8), datamodule.splits["train"][order])
    assert torch.equal(y, datamodule.label_splits["train"][order])
    # the validation split is the training file's last 10,000 rows, with their labels
    train_labels, test_labels = datamodule.load_train_test_labels()
    assert torch.equal(datamodule.label_splits["val"], torch.as_tensor(train_labels[-10_000:]))
    assert torch.equal(datamodule.sample_labels("test", 5), torch.as_tensor(test_labels[:5]))
    assert test_labels[:5].tolist() == [7, 2, 1, 0, 4]  # the first MNIST test digits


LABEL = {"_target_": "vae_zoo.conditions.label.LabelCondition"}


def small_parts(encoder: str) -> dict:
    """A small model's components: ``mlp`` or ``conv`` networks, 4 Normal latents, Bernoulli pixels."""
    nets = {
        "mlp": (
            {"_target_": "vae_zoo.nets.mlp.MLPEncoder", "hidden": [32]},
            {"_target_": "vae_zoo.nets.mlp.MLPDecoder", "hidden": [32]},
        ),
        "conv": (
            {"_target_": "vae_zoo.nets.conv.ConvEncoder", "channels": [4, 8], "features": 16},
            {"_target_": "vae_zoo.nets.conv.ConvDecoder", "channels": [8, 4], "features": 16},
        ),
    }[encoder]
    return {
        "encoder": nets[0],
        "decoder": nets[1],
        "latent": component("latent", "normal", dim=4),
        "estimator": component("estimator", "pathwise"),
        "likelihood": component("likelihood", "bernoulli"),
    }


def unconditional_and_conditional(encoder: str) -> tuple[ProbabilisticModel, ProbabilisticModel]:
    parts = small_parts(encoder)
    return ProbabilisticModel(**parts), ProbabilisticModel(**parts, condition=LABEL, classes=10)


@pytest.mark.parametrize("encoder", ["mlp", "conv"])
def test_a_model_whose_label_inputs_are_zeroed_gives_the_unconditional_numbers(encoder, data_dir):
    """The label joins the networks as extra input columns: with their weights zero the conditional model is the
    unconditional one, whatever the label (negative ELBO and IW bound, same draws)."""
    plain, conditional = unconditional_and_conditional(encoder)
    widened = conditional.state_dict()
    with torch.no_grad():
        for name, value in plain.state_dict().items():
            target = widened[name]
            target.zero_()
            target[tuple(slice(0, size) for size in value.shape)] = value  # the label's columns come last
    x = MNISTDataModule(data_dir, binarize="none").sample_images("test", 20).round()
    y = torch.arange(20) % 10
    torch.manual_seed(0)
    expected = plain(x), plain.importance_weighted_nll(x, 8)
    torch.manual_seed(0)
    with conditional.given(y):
        got = conditional(x), conditional.importance_weighted_nll(x, 8)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-5)


def with_the_conditional_prior(model: ProbabilisticModel) -> ProbabilisticModel:
    """The small conditional MLP ``model`` with ``p(z|y)`` (``prior=conditional_normal``) in place of its prior,
    its other weights kept."""
    prior = component("prior", "conditional_normal")
    conditional = ProbabilisticModel(**small_parts("mlp"), prior=prior, condition=LABEL, classes=10)
    missing, unexpected = conditional.load_state_dict(model.state_dict(), strict=False)
    assert missing == ["prior.net.weight", "prior.net.bias"] and not unexpected
    return conditional


def test_an_untrained_conditional_prior_is_the_standard_prior_for_every_class(data_dir):
    """``p(z|y)`` starts at ``N(0, I)`` for every class: the same negative ELBO and IW bound as the model with the
    standard prior, for the same draws."""
    _, standard = unconditional_and_conditional("mlp")
    conditional = with_the_conditional_prior(standard)
    assert conditional.closed_form_kl and conditional.kl_origin == standard.kl_origin == "closed form"
    x = MNISTDataModule(data_dir, binarize="none").sample_images("test", 20).round()
    y = torch.arange(20) % 10
    numbers = []
    for model in (standard, conditional):
        torch.manual_seed(0)
        with model.given(y):
            numbers.append((model(x), model.importance_weighted_nll(x, 8)))
    torch.testing.assert_close(numbers[1], numbers[0], rtol=1e-6, atol=1e-5)


def test_the_conditional_prior_is_each_images_own_class_normal(data_dir):
    """With the prior network's weights set, ``p(z|y)`` is ``N(m_y, diag s_y^2)`` image by image: the closed-form
    KL is the diagonal-Normal formula against each image's own class, the one-sample estimates average to it,
    and ``prior_samples`` / ``sample(n, y)`` draw each row from its own class's prior (means within 4 standard
    errors)."""
    _, standard = unconditional_and_conditional("mlp")
    model = with_the_conditional_prior(standard)
    torch.manual_seed(0)
    with torch.no_grad():
        model.prior.net.weight.copy_(torch.randn_like(model.prior.net.weight) * 2)
        model.prior.net.bias.normal_()
    table = model.prior.net.weight.T + model.prior.net.bias  # row y: (m_y, r_y)
    means, scales = table[:, :4], torch.nn.functional.softplus(table[:, 4:]) + 1e-5
    x = MNISTDataModule(data_dir, binarize="none").sample_images("test", 30).round()
    y = torch.arange(30) % 10
    with torch.no_grad(), model.given(y):
        q = model.posterior(x)
        mu, sigma = q.base_dist.loc, q.base_dist.scale
        m, s = means[y], scales[y]
        expected = (torch.log(s / sigma) + (sigma**2 + (mu - m) ** 2) / (2 * s**2) - 0.5).sum(-1)
        torch.testing.assert_close(model.kl(q), expected, rtol=1e-5, atol=1e-5)
        estimates = model.kl_estimate(q, q.sample((20_000,)))
        error = estimates.std(0) / 20_000**0.5
        assert ((estimates.mean(0) - expected).abs() < 4 * error).all()
    draws = 4000
    rows = torch.arange(10).repeat_interleave(draws)
    with torch.no_grad(), model.given(rows):
        z = model.prior_samples(len(rows)).unflatten(0, (10, draws))
    assert ((z.mean(1) - means).abs() < 4 * scales / draws**0.5).all()
    assert model.sample(3, torch.tensor([0, 4, 9])).shape == (3, 1, 28, 28)
    # the Python API's p(z|y), and the standard prior's p(z) with or without labels
    p = model.latent_prior(torch.tensor([0, 4, 9])).base_dist
    torch.testing.assert_close((p.loc, p.scale), (means[[0, 4, 9]], scales[[0, 4, 9]]))
    for labels in (None, torch.tensor([0, 4, 9])):
        assert standard.latent_prior(labels).batch_shape == () and not standard.latent_prior().mean.any()
    with pytest.raises(
        ConfigError, match=r"this model is conditional \(condition=label\): give each image's class"
    ):
        model.latent_prior()


def test_the_conditional_prior_trains_evaluates_draws_and_loads(data_dir, tmp_path):
    """``condition=label prior=conditional_normal`` from the command line: trained, its pictures drawn (prior
    samples per class, also at a lower temperature: each class's own quantiles), loaded in Python; in an
    unconditional model it is one line, and nothing is written."""
    run = tmp_path / "run"
    result = run_script(
        "train.py",
        *FAST,
        f"paths.data_dir={data_dir}",
        "condition=label",
        "prior=conditional_normal",
        f"hydra.run.dir={run}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert math.isfinite(metrics["test/nll_iw"])
    assert "test/mutual_info" in metrics and "test/marginal_kl" not in metrics  # the KL is to p(z|y)
    drawn = run_script(
        "sample.py",
        f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
        "grids.n=16",
        "grids.temperature=0.5",
        f"hydra.run.dir={tmp_path / 'grids'}",
    )
    assert drawn.returncode == 0, drawn.stderr[-3000:]
    for name in ("samples", "interpolations", "traversals"):
        assert (tmp_path / "grids" / f"{name}.png").is_file(), name
    model = vae_zoo.load(run)
    assert model.sample(2, y=torch.tensor([3, 8])).shape == (2, 1, 28, 28)

    assert refused_training(tmp_path / "no", f"paths.data_dir={data_dir}", "prior=conditional_normal") == (
        "error: prior=conditional_normal is p(z|y) and needs the label: add condition=label, or choose "
        "prior=learned_normal for an unconditional model"
    )


def test_the_label_lowers_the_bound_after_equal_steps(make_cfg):
    """A 2-d Gaussian latent on MNIST, 400 steps each from the same seed: given the digit's class the test
    negative ELBO (a bound on -log p(x|y)) is below the unconditional one (on -log p(x)). Measured on 1,000 test
    images: 182.9 nats unconditional, 173.1 conditional (at 300 steps: 187.6 and 184.0)."""
    elbo = {}
    for condition in ("none", "label"):
        cfg = make_cfg(
            *SMALL, f"condition={condition}", "+trainer.max_steps=400", "callbacks=none", "logger=[]"
        )
        reseed(cfg)
        datamodule, vae = build_datamodule_and_model(cfg)
        trainer = build_trainer(cfg, logging=False)
        trainer.fit(vae, datamodule=datamodule)
        elbo[condition] = trainer.test(vae, datamodule=datamodule, verbose=False)[0]["test/elbo"]
    assert elbo["label"] < elbo["none"] - 5, elbo


def test_conditional_runs_evaluate_sample_resume_and_load(data_dir, tmp_path):
    run = tmp_path / "run"
    result = run_script(
        "train.py", *FAST, f"paths.data_dir={data_dir}", "condition=label", f"hydra.run.dir={run}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["condition"] == "label"
    checkpoint = run / "checkpoints" / "last.ckpt"

    evaluated = run_script(
        "eval.py", f"ckpt_path={checkpoint}", "eval.iw_samples=4", f"hydra.run.dir={tmp_path / 'eval'}"
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["condition"] == "label"

    drawn = run_script(
        "sample.py", f"ckpt_path={checkpoint}", "grids.n=16", f"hydra.run.dir={tmp_path / 'grids'}"
    )
    assert drawn.returncode == 0, drawn.stderr[-3000:]
    for name in ("samples", "reconstructions", "interpolations", "analogies", "traversals"):
        assert (tmp_path / "grids" / f"{name}.png").is_file(), name

    resumed = run_script(
        "train.py",
        *SMALL,
        f"paths.data_dir={data_dir}",
        "condition=label",
        "trainer.max_epochs=2",
        "+trainer.limit_train_batches=5",
        f"hydra.run.dir={tmp_path / 'resumed'}",
        f"ckpt_path={checkpoint}",
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((tmp_path / "resumed" / "metrics.json").read_text())["global_step"] == 10

    model = vae_zoo.load(run)
    x = MNISTDataModule(data_dir).sample_images("test", 3).round()
    y = torch.tensor([7, 2, 1])
    assert model.log_likelihood(x, k=4, y=y).shape == (3,)
    assert model.sample(4, y=torch.tensor([0, 1, 2, 3])).shape == (4, 1, 28, 28)
    with pytest.raises(
        ConfigError, match=r"this model is conditional \(condition=label\): give each image's class"
    ):
        model.encode(x)
    with pytest.raises(ConfigError, match=r"one class label per image, integers in \[0, 10\)"):
        model.encode(x, torch.tensor([1, 2, 10]))


def one_error_line(result) -> str:
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    (line,) = result.stderr.strip().splitlines()
    return line


def refused_training(run_dir: Path, *overrides: str) -> str:
    """The one error line of a short ``train.py`` with ``overrides`` into ``run_dir``, which gets no checkpoints."""
    line = one_error_line(run_script("train.py", *FAST, *overrides, f"hydra.run.dir={run_dir}"))
    assert not (run_dir / "checkpoints").exists()
    return line


def test_a_dataset_without_labels_is_refused_in_one_line_writing_nothing(data_dir, tmp_path):
    line = refused_training(
        tmp_path / "run", f"paths.data_dir={data_dir}", "data=binarized_mnist", "condition=label"
    )
    assert line == (
        "error: condition=label needs class labels, and data=BinarizedMNISTDataModule has none -- use a labelled "
        "dataset (mnist, fashion_mnist, cifar10, svhn, an image_folder of class subfolders) or condition=none"
    )


def test_an_unconditional_checkpoint_resumed_as_conditional_is_one_line(data_dir, tmp_path):
    run = tmp_path / "run"
    assert run_script("train.py", *FAST, f"paths.data_dir={data_dir}", f"hydra.run.dir={run}").returncode == 0
    before = {path: path.stat().st_mtime_ns for path in run.rglob("*") if path.is_file()}
    checkpoint = run / "checkpoints" / "last.ckpt"
    result = run_script(
        "train.py",
        *FAST,
        f"paths.data_dir={data_dir}",
        "condition=label",
        f"ckpt_path={checkpoint}",
        f"hydra.run.dir={tmp_path / 'again'}",
    )
    assert one_error_line(result).startswith(
        f"error: ckpt_path={checkpoint} holds an unconditional model's weights"
    )
    assert {path: path.stat().st_mtime_ns for path in run.rglob("*") if path.is_file()} == before


def test_a_conditional_checkpoint_keeps_its_classes(data_dir, tmp_path, make_cfg):
    """``classes`` travels in the hyperparameters: sample.py without the data still draws one row per class."""
    run = tmp_path / "run"
    assert (
        run_script(
            "train.py", *FAST, f"paths.data_dir={data_dir}", "condition=label", f"hydra.run.dir={run}"
        ).returncode
        == 0
    )
    saved = read_saved_run(make_cfg(f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"), "sample.py")
    assert saved.checkpoint["hyper_parameters"]["classes"] == 10
    model = saved.model().model
    assert (
        model.condition.classes == 10
        and math.prod(model.generate(3, torch.tensor([0, 5, 9])).shape) == 3 * 784
    )


def test_labels_that_do_not_fit_their_images_are_one_line(data_dir, tmp_path):
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / name).symlink_to(Path(data_dir) / "MNIST" / "raw" / name)
    labels = (Path(data_dir) / "MNIST" / "raw" / "train-labels-idx1-ubyte").read_bytes()
    (raw / "train-labels-idx1-ubyte").write_bytes(labels[:4] + (59_999).to_bytes(4, "big") + labels[8:-1])
    line = refused_training(
        tmp_path / "run", f"paths.data_dir={tmp_path / 'data'}", "data.download=false", "condition=label"
    )
    assert line == (
        "error: the train split's labels do not fit its images: 49999 labels for 50000 images, or a label outside "
        "[0, 10) -- check the dataset's label files"
    )
