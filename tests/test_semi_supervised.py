"""Semi-supervised learning (Kingma et al. 2014's M2, ``objective=semi_supervised``): labelled and unlabelled
images, the unknown label summed out under the classifier ``q(y|x)``."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
from conftest import component, run_script
from test_conditional import FAST, LABEL, refused_training, small_parts

import vae_zoo
from vae_zoo.cli import build_datamodule_and_model, reseed
from vae_zoo.conditions.label import UNLABELLED, every_class
from vae_zoo.data.mnist import MNISTDataModule
from vae_zoo.objectives.semi_supervised import SemiSupervisedELBO, summed_out
from vae_zoo.packing.train_pack import PackJob, build_pack
from vae_zoo.probabilistic_model import ProbabilisticModel

CLASSIFIER = component("classifier", "mlp", hidden=[16])


def semi_supervised_model(**parts) -> tuple[ProbabilisticModel, SemiSupervisedELBO]:
    """A small conditional MLP model with ``q(y|x)``, its parts overridden by ``parts``, and its objective."""
    model = ProbabilisticModel(
        **{**small_parts("mlp"), **parts}, condition=LABEL, classes=10, classifier=CLASSIFIER
    )
    objective = SemiSupervisedELBO(alpha=3.0)
    objective.bind(model)
    return model, objective


def test_summing_out_the_label_is_tightest_at_its_posterior():
    """``sum_y q(y) L(y) - H(q) >= -log sum_y exp(-L(y))``, with equality at ``q(y) = softmax(-L)``; and
    ``every_class`` lays the rows out image by image, each image's classes in turn."""
    torch.manual_seed(0)
    losses = torch.randn(3, 4) * 3  # (images, classes)
    tightest = -torch.logsumexp(-losses, dim=1)
    best = torch.log_softmax(-losses, dim=-1)
    torch.testing.assert_close(summed_out(losses, best.exp(), best), tightest)
    other = torch.log_softmax(torch.randn(3, 4), dim=-1)
    assert (summed_out(losses, other.exp(), other) > tightest + 1e-4).all()
    rows, labels = every_class(torch.arange(3.0)[:, None], 4)
    assert rows.squeeze(-1).tolist() == [0] * 4 + [1] * 4 + [2] * 4 and labels.tolist() == [0, 1, 2, 3] * 3


def test_the_loss_is_the_labelled_bound_and_the_unlabelled_one_summed_out(data_dir):
    """With a decoder that does not read ``z`` (its weights on ``z`` zero) each ``L(x, y)`` is exact: the loss is
    ``L(x, y) + alpha * -log q(y|x)`` for the labelled images and ``sum_y q(y|x) L(x, y) - H(q(y|x))`` for the
    others, ``L`` the negative ELBO of ``p(x|y) p(y)`` found image by image and class by class; the evaluation
    bound is the second for every image; and the classifier learns from the unlabelled images alone."""
    model, objective = semi_supervised_model()
    with torch.no_grad():
        model.decoder.net[0][0].weight[:, :4] = 0  # the decoder's first layer reads [z, c(y)]
    x = MNISTDataModule(data_dir, binarize="none").sample_images("test", 6).round()
    labels = torch.tensor([3, UNLABELLED, 7, UNLABELLED, UNLABELLED, 0])
    z = torch.zeros(1, 4)
    with torch.no_grad():
        bound = torch.empty(6, 10)
        for i, c in itertools.product(range(6), range(10)):
            with model.given(torch.tensor([c])):
                bound[i, c] = (
                    model.nll(x[i : i + 1], z) + model.kl(model.posterior(x[i : i + 1])) + math.log(10)
                )
        log_q = model.class_log_probs(x)
    q = log_q.exp()
    summed = (q * (bound + log_q)).sum(-1)
    known = labels >= 0
    own = bound[known].gather(-1, labels[known, None]).squeeze(-1)
    class_nll = -log_q[known].gather(-1, labels[known, None]).squeeze(-1)
    expected_loss = (torch.cat([own + 3.0 * class_nll, summed[~known]])).mean()
    with model.given(labels):
        loss, terms = objective(model, x)
    torch.testing.assert_close(loss, expected_loss)
    torch.testing.assert_close(terms["elbo"], torch.cat([own, summed[~known]]).mean())
    torch.testing.assert_close(terms["class_nll"], class_nll.mean())
    with torch.no_grad(), model.given(labels):
        torch.testing.assert_close(objective.bound(model, x), summed)
    # without labelled images and with alpha = 0 the classifier's gradient comes from the unlabelled bound
    objective.alpha = 0.0
    for given, learns in ((labels, True), (torch.tensor([3, 1, 7, 2, 2, 0]), False)):
        model.zero_grad()
        with model.given(given):
            objective(model, x).loss.backward()
        assert bool(model.classifier.net[-1].weight.grad.abs().sum() > 0) == learns


def test_the_marginal_likelihood_sums_the_label_out_exactly(data_dir):
    """With ``q(z|x, y) = p(z) = N(0, I)`` and a decoder that does not read ``z``, every importance weight is
    ``p(x|y)``, so the bound with the label summed out is exactly ``log (1/10) sum_y p(x|y)``, whatever k;
    ``log_likelihood(x, k)`` without labels is it, and with them ``log p(x|y)``."""
    model, _ = semi_supervised_model()
    with torch.no_grad():
        model.decoder.net[0][0].weight[:, :4] = 0
        model.latent.head.weight.zero_()
        model.latent.head.bias[:4] = 0
        model.latent.head.bias[4:] = math.log(math.expm1(1 - 1e-5))  # softplus(s) + 1e-5 = 1
    x = MNISTDataModule(data_dir, binarize="none").sample_images("test", 5).round()
    with torch.no_grad():
        log_p = torch.stack(
            [model.decode(torch.zeros(5, 4), torch.full((5,), c)).log_prob(x) for c in range(10)]
        )
        expected = torch.logsumexp(log_p, dim=0) - math.log(10)
        for k in (1, 7):
            torch.testing.assert_close(model.log_likelihood(x, k), expected, rtol=1e-6, atol=1e-4)
        torch.testing.assert_close(
            model.log_likelihood(x, 3, y=torch.arange(5)),
            log_p[torch.arange(5), torch.arange(5)],
            rtol=1e-6,
            atol=1e-4,
        )


def test_a_score_function_estimator_is_unbiased_with_the_labels_summed_out(data_dir):
    """With three Bernoulli latents (8 configurations, summed exactly) and the score-function estimator, the
    gradient of the loss averages over 2000 draws to the exact gradient of ``sum_y q(y|x) E_q(z|x,y) L(x, y, z) -
    H`` (each class's surrogate weighted by ``q(y|x)``), along five random directions of the posterior head's parameters within 4 standard errors;
    the exact gradient with the surrogates left unweighted is more than 4 standard errors away (the test's
    power)."""
    latent = component("latent", "bernoulli", dim=3)
    estimator = component(
        "estimator", "score_function"
    )  # a moving-average baseline: unbiased, lower variance
    model, objective = semi_supervised_model(latent=latent, estimator=estimator)
    x = MNISTDataModule(data_dir, binarize="none").sample_images("test", 3).round()
    labels = torch.tensor([UNLABELLED, 5, UNLABELLED])
    parameters = list(model.latent.parameters())  # the posterior's head: where the surrogates' gradient goes
    torch.manual_seed(1)
    directions = [torch.randn(sum(p.numel() for p in parameters)) for _ in range(5)]
    flat = lambda: torch.cat([p.grad.flatten() for p in parameters])

    def exact(weighted: bool) -> torch.Tensor:
        """The gradient of the exact loss (``weighted``: as the objective intends; else with the encoder's
        score-function gradient of each class unweighted by ``q(y|x)``)."""
        model.zero_grad()
        log_q_y = model.class_log_probs(x)
        configurations = torch.tensor(list(itertools.product([0.0, 1.0], repeat=3)))
        rows, row_labels = every_class(x, 10)
        with model.given(row_labels):
            posterior = model.posterior(rows)
            nll = model.nll(rows, configurations[:, None, :].expand(8, len(rows), 3))
            log_q_z = posterior.log_prob(configurations[:, None, :])
            expected_nll = (log_q_z.exp() * nll).sum(0)
            per_row = expected_nll + model.kl(posterior) + math.log(10)
        per_image = summed_out(
            per_row.reshape(3, 10), log_q_y.exp(), log_q_y
        )  # every image unlabelled at first
        labelled = per_row.reshape(3, 10)[1, 5] + 3.0 * -log_q_y[1, 5]
        loss = torch.stack([per_image[0], labelled, per_image[2]]).mean()
        if not weighted:
            q_path = (log_q_z.exp() * nll.detach()).sum(0).reshape(3, 10)
            extra = ((1 - log_q_y.exp().detach()) * q_path)[[0, 2]].sum() / 3
            loss = loss + extra - extra.detach()
        loss.backward()
        return flat()

    right, wrong = exact(True), exact(False)
    draws = []
    for _ in range(2000):
        model.zero_grad()
        with model.given(labels):
            objective(model, x).loss.backward()
        draws.append(torch.stack([flat() @ d for d in directions]))
    draws = torch.stack(draws)
    mean, error = draws.mean(0), draws.std(0) / len(draws) ** 0.5
    right = torch.stack([right @ d for d in directions])
    wrong = torch.stack([wrong @ d for d in directions])
    assert ((mean - right).abs() < 4 * error).all(), (mean, right, error)
    assert ((mean - wrong).abs() > 4 * error).any(), (mean, wrong, error)


def test_the_kept_labels_are_balanced_seeded_and_in_every_batch(data_dir):
    """``data.labels=100`` keeps 10 true labels per class (chosen by the seed) and withholds the others; each
    training batch holds its own rows, then ``labelled_per_batch`` of the labelled images with their labels, the
    same after a resume."""
    kept = {}
    for seed in (3, 3, 4):
        datamodule = MNISTDataModule(
            data_dir, batch_size=32, binarize="none", labels=100, labelled_per_batch=8, seed=seed
        )
        datamodule.serve_labels()
        datamodule.setup()
        train = datamodule.label_splits["train"]
        known = train != UNLABELLED
        truth = torch.as_tensor(datamodule.load_train_test_labels()[0][:-10_000])
        assert torch.bincount(train[known]).tolist() == [10] * 10 and torch.equal(train[known], truth[known])
        assert torch.equal(known.nonzero().squeeze(1), datamodule.labelled_train)
        kept.setdefault(seed, []).append(datamodule.labelled_train)
    assert torch.equal(*kept[3]) and not torch.equal(kept[3][0], kept[4][0])
    batches = datamodule.train_dataloader()
    first = list(itertools.islice(batches, 3))
    for x, y in first:
        assert len(x) == 40 and (y[32:] != UNLABELLED).all()
        labelled_images = datamodule.splits["train"][datamodule.labelled_train]
        for image, label in zip((x[32:] * 255).round().to(torch.uint8), y[32:]):
            (match,) = (labelled_images == image).flatten(1).all(1).nonzero().squeeze(1).tolist()
            assert train[datamodule.labelled_train[match]] == label
    order = batches.shard_indices()[:32]
    assert torch.equal(first[0][1][:32], train[order])
    batches.load_state_dict({"epoch": 0, "batches_done": 2})
    resumed = next(iter(batches))
    assert torch.equal(resumed[0], first[2][0]) and torch.equal(resumed[1], first[2][1])


SEMI = ("condition=label", "classifier=mlp", "objective=semi_supervised", "model.classifier.hidden=[32]")


def test_a_semi_supervised_run_trains_evaluates_and_classifies(data_dir, tmp_path):
    """From the command line with 100 labels: ``test/class_error`` is the error of ``vae_zoo.load(run).classify``
    on the same test images; ``eval.py`` reports it again, and ``val/class_error`` can be the optimized metric."""
    run = tmp_path / "run"
    result = run_script(
        "train.py",
        *FAST,
        *SEMI,
        "data.labels=100",
        "optimized_metric=val/class_error",
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={run}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert all(
        math.isfinite(metrics[f"test/{name}"]) for name in ("elbo_marginal", "nll_iw", "nll_iw_marginal")
    )
    datamodule = MNISTDataModule(data_dir)
    datamodule.serve_labels()
    datamodule.setup()
    x, y = datamodule.sample_images("test", 1000), datamodule.sample_labels("test", 1000)  # 4 batches of 250
    model = vae_zoo.load(run)
    with torch.no_grad():
        q_y = model.classify(x)
    assert q_y.probs.shape == (1000, 10)
    error = (q_y.probs.argmax(-1) != y).float().mean().item()
    assert metrics["test/class_error"] == pytest.approx(error, abs=1e-6) and 0 < error < 0.9
    evaluated = run_script(
        "eval.py",
        f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
        "eval.iw_samples=4",
        f"hydra.run.dir={tmp_path / 'eval'}",
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "test/class_error" in json.loads((tmp_path / "eval" / "metrics.json").read_text())


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (
            ("data.labels=100",),
            (
                "error: data.labels=100 withholds the other training labels, and only objective=semi_supervised trains "
                "on unlabelled images: add objective=semi_supervised classifier=mlp condition=label, or data.labels=null"
            ),
        ),
        (
            ("condition=label", "objective=semi_supervised"),
            "error: objective=semi_supervised infers unknown labels with q(y|x): add classifier=mlp condition=label",
        ),
        (
            ("condition=label", "classifier=mlp"),
            (
                "error: classifier=mlp is trained by objective=semi_supervised, and objective=elbo would leave it "
                "untrained: add objective=semi_supervised, or classifier=none"
            ),
        ),
        (
            ("classifier=mlp",),
            "error: classifier=mlp infers the label of a conditional model: add condition=label, or classifier=none",
        ),
        (
            ("classifier=conv",),
            "error: classifier=conv infers the label of a conditional model: add condition=label, or classifier=none",
        ),
        (
            (*SEMI, "data.labels=15"),
            "error: data.labels=15 must be a multiple of the 10 classes (the same number of each)",
        ),
        (
            (*SEMI, "data.labels=60000"),
            (
                "error: data.labels=60000 keeps 6000 labels per class, and class 0 has 4932 training images -- choose "
                "fewer labels"
            ),
        ),
    ],
    ids=[
        "labels_without_the_objective",
        "objective_without_classifier",
        "classifier_without_objective",
        "classifier_without_condition",
        "conv_classifier_without_condition",
        "labels_not_per_class",
        "more_labels_than_images",
    ],
)
def test_what_semi_supervised_training_cannot_use_is_one_line_writing_nothing(
    overrides, line, data_dir, tmp_path
):
    assert refused_training(tmp_path / "run", f"paths.data_dir={data_dir}", *overrides) == line


def test_each_model_of_a_packed_semi_supervised_sweep_has_its_seeds_labels_and_writes_its_run(
    data_dir, tmp_path, make_cfg
):
    """Packed, model ``n`` sees its unpacked seed's batches, images and kept labels (chosen by its seed); from the
    command line a packed sweep of two seeds writes both runs with ``test/class_error``. (A pack of one is its
    unpacked run, test_packing.py; a pack of two computes each model's own loss, test_packing_conformance.py.)"""
    overrides = (*SEMI, "data.labels=100", "data.batch_size=16", "data.labelled_per_batch=4")
    cfgs = [make_cfg(*overrides, f"seed={seed}") for seed in (3, 4)]
    datamodule, _ = build_pack([PackJob(cfg) for cfg in cfgs])
    datamodule.setup("fit")
    packed_batches = list(itertools.islice(datamodule.train_dataloader(), 2))
    kept = []
    for n, cfg in enumerate(cfgs):
        reseed(cfg)
        alone, _ = build_datamodule_and_model(cfg)
        alone.setup("fit")
        for (x, y), (own_x, own_y) in zip(packed_batches, alone.train_dataloader()):
            assert torch.equal(x[20 * n : 20 * (n + 1)], own_x) and torch.equal(
                y[20 * n : 20 * (n + 1)], own_y
            )
        assert torch.equal(datamodule.datamodules[n].labelled_train, alone.labelled_train)
        kept.append(alone.labelled_train)
    assert not torch.equal(*kept)
    result = run_script(
        "train.py",
        "-m",
        "hydra/launcher=packed",
        *FAST,
        *SEMI,
        "data.labels=100",
        "seed=0,1",
        f"paths.data_dir={data_dir}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    )
    assert result.returncode == 0 and "2 jobs train as one model" in result.stdout, result.stderr[-3000:]
    for job in ("0", "1"):
        metrics = json.loads((tmp_path / "sweep" / job / "metrics.json").read_text())
        assert 0 < metrics["test/class_error"] < 1 and math.isfinite(metrics["test/nll_iw_marginal"])
