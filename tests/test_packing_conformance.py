"""Every component packs (a component with state of no packed form is refused in one line, test_packing.py): for each model below, a pack of two computes each model's
posterior, likelihood and importance weights (its own prior's density included) as its unpacked model does (to float32 rounding: batched and grouped kernels add in
another order), and trains a few steps to finite losses."""

from __future__ import annotations

import pytest
import torch

from vae_zoo.cli import build_trainer
from vae_zoo.data.tensor_batches import images_and_labels
from vae_zoo.packed_batch import per_image_copies
from vae_zoo.packing.train_pack import PackJob, build_pack

NETS = ("model.encoder.hidden=[16]", "model.decoder.hidden=[16]")
CONV = ("encoder=conv", "decoder=conv", "model.encoder.channels=[4,8]", "model.decoder.channels=[8,4]")
CONV += ("model.encoder.features=16", "model.decoder.features=16")
EIGHT_BIT = ("data.binarize=none",)
DEQUANTIZED = ("data.binarize=none", "data.dequantize=true")
#: Kingma et al.'s M2: every image computed for every class (several rows per image), a learned prior's copies
#: and the estimators' statistics on those rows
SEMI_SUPERVISED = ("condition=label", "classifier=mlp", "objective=semi_supervised", "data.labels=20")
SEMI_SUPERVISED += ("data.labelled_per_batch=4",)
PACKING = {
    "gaussian": NETS,
    "gaussian_conv": CONV,
    "bernoulli_disarm": (*NETS, "model=bernoulli_vae"),
    "bernoulli_arm": (*NETS, "model=bernoulli_vae", "estimator=arm"),
    "bernoulli_reinforce_loo": (*NETS, "model=bernoulli_vae", "estimator=reinforce_loo"),
    "bernoulli_vimco_iwae": (*NETS, "model=bernoulli_vae", "estimator=vimco", "objective=iwae"),
    "categorical_gumbel_softmax": (*NETS, "model=gumbel_vae"),
    "categorical_straight_through": (*NETS, "model=gumbel_vae", "estimator=straight_through"),
    "categorical_gumbel_rao": (*NETS, "model=gumbel_vae", "estimator=gumbel_rao"),
    "categorical_reinmax": (*NETS, "model=gumbel_vae", "estimator=reinmax"),
    "bernoulli_reinmax": (*NETS, "model=bernoulli_vae", "estimator=reinmax"),
    "gamma_implicit": (*NETS, "model=gamma_vae"),
    "beta_implicit": (*NETS, "latent=beta", "estimator=implicit"),
    "dirichlet_implicit": (*NETS, "latent=dirichlet", "estimator=implicit"),
    "von_mises_implicit": (*NETS, "latent=von_mises", "estimator=implicit"),
    "von_mises_fisher": (*NETS, "latent=von_mises_fisher", "estimator=pathwise"),
    "power_spherical": (*NETS, "latent=power_spherical", "estimator=implicit"),
    "truncated_normal_implicit": (*NETS, "latent=truncated_normal", "estimator=implicit"),
    "two_layer": (*NETS, "model=two_layer_vae"),
    "iwae": (*NETS, "objective=iwae"),
    "iwae_dreg": (*NETS, "objective=iwae", "objective.gradient=dreg"),
    "miwae_dreg": (*NETS, "objective=iwae", "objective.k=2", "objective.groups=3", "objective.gradient=dreg"),
    "piwae": (*NETS, "objective=iwae", "objective.k=2", "objective.groups=3", "objective.partitioned=true"),
    "ciwae_vamp": (
        *NETS,
        "objective=iwae",
        "objective.elbo_weight=0.5",
        "prior=vamp",
        "model.prior.components=5",
    ),
    "gamma_sticking_the_landing": (*NETS, "model=gamma_vae", "objective.gradient=dreg"),
    "free_bits": (*NETS, "objective.free_bits=0.5"),
    "capacity": (*NETS, "objective.capacity_weight=50", "objective.capacity=2"),
    "categorical_free_bits": (*NETS, "model=gumbel_vae", "objective.free_bits=0.05"),
    "total_correlation": (*NETS, "objective.tc_weight=4"),
    "mmd": (*NETS, "objective.mmd_weight=10", "objective.beta=0"),
    "dip": (*NETS, "objective.dip_weight=5"),
    "dip_aggregate_conv": (*CONV, "objective.dip_weight=5", "objective.dip_covariance=aggregate"),
    "factor": (*NETS, "discriminator=mlp", "model.discriminator.hidden=[16]", "objective.factor_weight=5"),
    "factor_conv_von_mises_fisher": (
        *CONV,
        "latent=von_mises_fisher",
        "discriminator=mlp",
        "model.discriminator.hidden=[16,16]",
        "objective.factor_weight=5",
    ),
    "mmd_vamp": (*NETS, "objective.mmd_weight=10", "prior=vamp", "model.prior.components=5"),
    "planar_flow": (*NETS, "flow=planar"),
    "iaf_flow": (*NETS, "flow=iaf"),
    "discretized_logistic": (*NETS, *EIGHT_BIT, "likelihood=discretized_logistic"),
    "gaussian_likelihood": (*NETS, *DEQUANTIZED, "likelihood=gaussian"),
    "continuous_bernoulli": (*NETS, *DEQUANTIZED, "likelihood=continuous_bernoulli"),
    "bernoulli_learned_prior": (*NETS, "model=bernoulli_vae", "model.latent.prior=learned"),
    "categorical_learned_prior": (*NETS, "model=gumbel_vae", "model.latent.prior=learned"),
    "vector_quantized": (*NETS, "model=vq_vae"),
    "vector_quantized_conv_learned_prior": (*CONV, "model=vq_vae", "model.latent.prior=learned"),
    "vector_quantized_grid_autoregressive_prior": (
        *CONV,
        "model=vq_vae",
        "model.encoder.grid=true",
        "model.decoder.grid=true",
        "model.latent.grid=true",
        "model.latent.positions=49",
        "model.latent.prior=autoregressive",
        "model.latent.prior_hidden=16",
    ),
    "vector_quantized_grid_pixelcnn_prior": (
        *CONV,
        "model=vq_vae",
        "model.encoder.grid=true",
        "model.decoder.grid=true",
        "model.latent.grid=true",
        "model.latent.positions=49",
        "model.latent.prior=pixelcnn",
        "model.latent.prior_channels=8",
        "model.latent.prior_layers=2",
    ),
    "vector_quantized_autoregressive_prior": (
        *NETS,
        "model=vq_vae",
        "model.latent.prior=autoregressive",
        "model.latent.prior_hidden=16",
    ),
    "vector_quantized_ema_restarts": (
        *NETS,
        "model=vq_vae",
        "model.latent.codebook_update=ema",
        "model.latent.restart_below=1",
    ),
    "vector_quantized_ema_semi_supervised": (
        *NETS,
        *SEMI_SUPERVISED,
        "model=vq_vae",
        "model.latent.codebook_update=ema",
        "model.classifier.hidden=[16]",
    ),
    "prior_mog": (*NETS, "prior=mog"),
    "prior_learned_normal": (*NETS, "prior=learned_normal"),
    "score_function": (*NETS, "estimator=score_function"),
    "score_function_iwae": (*NETS, "estimator=score_function", "objective=iwae", "objective.k=3"),
    "bernoulli_nvil": (*NETS, "model=bernoulli_vae", "estimator=nvil", "model.estimator.normalise=true"),
    "bernoulli_rebar": (*NETS, "model=bernoulli_vae", "estimator=rebar"),
    "bernoulli_relax": (*NETS, "model=bernoulli_vae", "estimator=relax"),
    "categorical_relax": (*NETS, "model=gumbel_vae", "estimator=relax"),
    "prior_vamp": (*NETS, "prior=vamp", "model.prior.components=5"),
    "prior_vamp_conv": (*CONV, "prior=vamp", "model.prior.components=5"),
    "conditional_embedding": (*NETS, "condition=label", "model.condition.embedding=3"),
    "conditional_conv_vamp": (*CONV, "condition=label", "prior=vamp", "model.prior.components=5"),
    "conditional_prior": (*NETS, "condition=label", "prior=conditional_normal"),
    "semi_supervised": (*NETS, *SEMI_SUPERVISED),
    "semi_supervised_sticking_the_landing": (*NETS, *SEMI_SUPERVISED, "objective.gradient=dreg"),
    "semi_supervised_conv_classifier": (
        *CONV,
        *SEMI_SUPERVISED,
        "classifier=conv",
        "model.classifier.channels=[4,8]",
        "model.classifier.features=16",
    ),
    "semi_supervised_mog_score_function": (*NETS, *SEMI_SUPERVISED, "prior=mog", "estimator=score_function"),
    "semi_supervised_categorical_learned_prior": (
        *NETS,
        *SEMI_SUPERVISED,
        "model=gumbel_vae",
        "model.latent.prior=learned",
        "model.classifier.hidden=[16]",
    ),
}
#: objectives with terms of the model's batch as a whole (the total correlation's aggregate posterior, the MMD):
#: each packed model's from its own images (their tests), not from a batch twice its size
BATCH_COUPLED = ("total_correlation", "mmd", "mmd_vamp", "factor", "factor_conv_von_mises_fisher")
SHORT = (
    "data.batch_size=8",
    "+trainer.max_steps=3",
    "trainer.limit_val_batches=1",
    "callbacks=none",
    "logger=[]",
)
SHORT += ("trainer.accelerator=cpu", "+trainer.num_sanity_val_steps=0")


@pytest.mark.parametrize("case", PACKING)
def test_a_pack_of_two_computes_each_models_own_numbers_and_trains(case, make_cfg):
    cfgs = [make_cfg(*PACKING[case], *SHORT, f"seed={seed}") for seed in (0, 1)]
    datamodule, packed = build_pack([PackJob(cfg) for cfg in cfgs])
    datamodule.setup("fit")
    x, labels = images_and_labels(next(iter(datamodule.train_dataloader())))
    rows = len(x) // 2
    # each model's learned prior made its own (a conditional prior's network starts at N(0, I) for every model)
    priors = [name for name, _ in packed.model.named_parameters() if name.startswith("prior.")]
    with torch.no_grad():
        for key in dict.fromkeys([*packed.model.per_image_parameters, *priors]):
            stacked = packed.model.get_parameter(key)
            stacked.add_(0.3 * torch.randn_like(stacked))
            for n, run in enumerate(packed.runs):
                run.model.get_parameter(key).copy_(stacked[n])
    if labels is not None:
        labels = labels.clamp(min=0)  # the networks read a class for each image (semi-supervised: any class)
    with torch.no_grad(), per_image_copies(packed.model, rows), packed.model.given(labels):
        q = packed.model.posterior(x)
        z = q.sample((2,))
        where, nll = packed.model.latent.location(q), packed.model.nll(x, z)
        flow = packed.model.flow is not None  # a flow's density is known at its own samples alone
        log_w = None if flow else packed.model.log_weights(x, q, z)
        for n, run in enumerate(packed.runs):
            own = slice(n * rows, (n + 1) * rows)
            with run.model.given(None if labels is None else labels[own]):
                alone = run.model.posterior(x[own])
                where_alone, nll_alone = run.model.latent.location(alone), run.model.nll(x[own], z[:, own])
                alone_w = None if log_w is None else run.model.log_weights(x[own], alone, z[:, own])
            torch.testing.assert_close(where[own], where_alone, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(nll[:, own], nll_alone, rtol=1e-4, atol=1e-3)
            if log_w is not None:
                torch.testing.assert_close(log_w[:, own], alone_w, rtol=1e-4, atol=1e-3)
    trainer = build_trainer(cfgs[0], logging=False)
    trainer.fit(packed, datamodule=datamodule)
    assert trainer.global_step == 3 and packed.losses.shape == (2,) and torch.isfinite(packed.losses).all()


@pytest.mark.parametrize("case", [case for case in PACKING if case not in BATCH_COUPLED])
def test_two_equal_models_get_twice_the_gradient_of_one_model_on_their_whole_batch(case, make_cfg):
    """Each packed model's loss is the mean over its own images (an estimator's own objective included): two
    equal models (one seed) sharing a batch get gradients summing to twice
    the unpacked model's on the whole batch, for the same draws (packed and unpacked draw the same shapes
    in the same order). Counting a term once per pack instead of once per model, or a mean over the whole
    packed batch, fails it by a factor of two."""
    cfgs = [make_cfg(*PACKING[case], *SHORT, "seed=0") for _ in range(2)]
    datamodule, packed = build_pack([PackJob(cfg) for cfg in cfgs])
    datamodule.setup("fit")
    x, labels = images_and_labels(next(iter(datamodule.train_dataloader())))
    run = packed.runs[0]
    torch.manual_seed(5)
    with per_image_copies(packed.model, len(x) // 2), packed.model.given(labels):
        loss, _ = packed.objective(packed.model, x)
    loss.sum().backward()
    torch.manual_seed(5)
    with run.model.given(labels):
        alone, _ = run.objective(run.model, x)
    alone.backward()
    for name, parameter in run.model.named_parameters():
        expected, stacked = 2 * parameter.grad, packed.model.get_parameter(name).grad
        scale = expected.abs().max().item()
        torch.testing.assert_close(stacked[0] + stacked[1], expected, rtol=1e-3, atol=1e-4 * scale, msg=name)
