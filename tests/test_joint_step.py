"""A pack's optimizers stepped by one call (``vae_zoo.packing.joint_step``) update every model exactly as N calls
do: the CPU's fused and for-loop implementations (foreach is CUDA's; the GPU tests step packs on CUDA)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from vae_zoo.optimizers import build_optimizer
from vae_zoo.packing.packed_vae import PackedOptimizer

MODELS = 3
CONFIGS = {
    "adam_fused": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-2, "impl": "fused"},
    "adam_for_loop": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-2, "impl": "for_loop"},
    "adamw_amsgrad": {
        "_target_": "torch.optim.AdamW",
        "_partial_": True,
        "lr": 1e-2,
        "weight_decay": 0.1,
        "amsgrad": True,
    },
    "sgd_nesterov": {
        "_target_": "torch.optim.SGD",
        "_partial_": True,
        "lr": 1e-2,
        "momentum": 0.9,
        "nesterov": True,
    },
    "sgd_momentum_for_loop": {
        "_target_": "torch.optim.SGD",
        "_partial_": True,
        "lr": 1e-2,
        "momentum": 0.9,
        "impl": "for_loop",
    },
}


def packed_optimizer(config: dict, parameters: list[nn.Parameter], lrs: list[float]) -> PackedOptimizer:
    """The pack's optimizer over ``parameters`` (stacked, a leading model dim): model n's at learning rate lrs[n]."""

    def build(n: int, views: list[torch.Tensor]) -> torch.optim.Optimizer:
        return build_optimizer({**config, "lr": lrs[n]}, views, parameters[0].device)

    return PackedOptimizer(parameters, build)


def stacked_parameters(seed: int, device: str = "cpu") -> list[nn.Parameter]:
    generator = torch.Generator().manual_seed(seed)
    return [
        nn.Parameter(torch.randn(MODELS, 5, 7, generator=generator).to(device)),
        nn.Parameter(torch.randn(MODELS, 5, generator=generator).to(device)),
    ]


def train(
    optimizer: PackedOptimizer, steps: int, seed: int, one_by_one: bool, resting: dict[int, int] | None = None
) -> None:
    """``steps`` steps on random gradients; ``resting`` maps a step to a model that does not step then (its
    guard skipped it, or it stopped early)."""
    generator = torch.Generator().manual_seed(seed)
    if one_by_one:
        optimizer.joint = None
    for step in range(steps):
        optimizer.active = [n != (resting or {}).get(step) for n in range(MODELS)]
        optimizer.zero_grad()
        for p in optimizer.packed:
            p.grad = torch.randn(p.shape, generator=generator).to(p.device)
        optimizer.split_gradients()
        optimizer.step()


def states(optimizer: PackedOptimizer) -> list[dict]:
    return [own.state_dict()["state"] for own in optimizer.optimizers]


def assert_same(first: PackedOptimizer, second: PackedOptimizer) -> None:
    for p, q in zip(first.packed, second.packed, strict=True):
        assert torch.equal(p, q)
    for own, other in zip(states(first), states(second), strict=True):
        assert own.keys() == other.keys()
        for index in own:
            for name, value in own[index].items():
                assert torch.equal(torch.as_tensor(value), torch.as_tensor(other[index][name])), name


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("lrs", [[1e-2] * MODELS, [1e-2, 3e-3, 1e-2]], ids=["one_lr", "an_lr_per_model"])
def test_one_call_for_every_model_updates_each_as_its_own_optimizer_would_bit_for_bit(name, lrs):
    joint = packed_optimizer(CONFIGS[name], stacked_parameters(0), lrs)
    one_by_one = packed_optimizer(CONFIGS[name], stacked_parameters(0), lrs)
    assert joint.joint is not None
    train(joint, steps=6, seed=1, one_by_one=False)
    train(one_by_one, steps=6, seed=1, one_by_one=True)
    assert_same(joint, one_by_one)
    assert not torch.equal(joint.packed[0], stacked_parameters(0)[0])  # they moved
    if lrs[1] != lrs[0]:  # each model moved by its own rate: model 1's step differs from model 0's
        moved = [joint.packed[0][n] - stacked_parameters(0)[0][n] for n in range(MODELS)]
        assert not torch.allclose(moved[0], moved[1])


def test_a_learning_rate_changed_between_steps_and_a_loaded_state_are_what_the_joint_step_uses():
    config = CONFIGS["adam_fused"]
    joint = packed_optimizer(config, stacked_parameters(0), [1e-2] * MODELS)
    one_by_one = packed_optimizer(config, stacked_parameters(0), [1e-2] * MODELS)
    for optimizer in (joint, one_by_one):
        optimizer.optimizers[2].param_groups[0]["lr"] = 5e-2  # as a scheduler moves one model's rate
    train(joint, steps=3, seed=1, one_by_one=False)
    train(one_by_one, steps=3, seed=1, one_by_one=True)
    assert_same(joint, one_by_one)
    # resumed: the models' optimizers load their states (replacing their state dicts), then step as one
    resumed = packed_optimizer(
        config, [nn.Parameter(p.detach().clone()) for p in joint.packed], [1e-2] * MODELS
    )
    resumed.load_state_dict(joint.state_dict())
    train(resumed, steps=3, seed=2, one_by_one=False)
    train(one_by_one, steps=3, seed=2, one_by_one=True)
    assert_same(resumed, one_by_one)


def test_one_call_for_the_models_that_step_leaves_the_others_as_they_were():
    """Model 1 rests at steps 1 and 2, model 0 at step 4: the call over the others is one by one bit for bit,
    and a resting model's weights and state do not move."""
    config = CONFIGS["adam_fused"]
    joint, one_by_one = (packed_optimizer(config, stacked_parameters(0), [1e-2] * MODELS) for _ in range(2))
    train(joint, steps=1, seed=1, one_by_one=False)
    before = [p[1].clone() for p in joint.packed], copy.deepcopy(states(joint)[1])
    train(joint, steps=2, seed=2, one_by_one=False, resting={0: 1, 1: 1})
    assert all(torch.equal(p[1], q) for p, q in zip(joint.packed, before[0]))
    assert all(torch.equal(v, before[1][i][k]) for i in before[1] for k, v in states(joint)[1][i].items())
    train(one_by_one, steps=1, seed=1, one_by_one=True)
    train(one_by_one, steps=2, seed=2, one_by_one=True, resting={0: 1, 1: 1})
    train(joint, steps=3, seed=3, one_by_one=False, resting={1: 0})
    train(one_by_one, steps=3, seed=3, one_by_one=True, resting={1: 0})
    assert_same(joint, one_by_one)


def test_an_optimizer_class_not_known_to_update_tensor_by_tensor_steps_one_model_at_a_time():
    config = {"_target_": "torch.optim.Adagrad", "_partial_": True, "lr": 1e-2}
    assert packed_optimizer(config, stacked_parameters(0), [1e-2] * MODELS).joint is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("impl", ["fused", "foreach", "for_loop"])
def test_on_cuda_one_call_for_every_model_updates_each_as_its_own_optimizer_would_bit_for_bit(impl):
    config = {**CONFIGS["adam_fused"], "impl": impl}
    lrs = [1e-2, 3e-3, 1e-2]
    joint = packed_optimizer(config, stacked_parameters(0, "cuda"), lrs)
    one_by_one = packed_optimizer(config, stacked_parameters(0, "cuda"), lrs)
    train(joint, steps=6, seed=1, one_by_one=False)
    train(one_by_one, steps=6, seed=1, one_by_one=True)
    assert_same(joint, one_by_one)
