"""N probabilistic models of one architecture as one module: every layer's weights stacked along a leading
model dimension, the models' images in turn along the batch.

Each of the N models is built as an unpacked run builds it (its seed, its initial weights); ``pack`` copies
their weights into packed layers, and ``unpacked_state_dict`` hands model ``n``'s back as an ordinary state
dict, so a packed model's checkpoints are single-model checkpoints. Distributions and likelihoods work on the
packed batch unchanged: they act image by image. A component's ``per_image_parameters`` (a learned prior's)
are stacked too, and each image gets its model's copy while the packed model computes
(``vae_zoo.packed_batch.per_image_copies``).
An estimator's, a prior's and a latent family's ``per_model_state`` (running baselines, an estimator's own
temperature, the VampPrior's pseudo-inputs, a VQ-VAE's codebook) is stacked to one per model, which they read per
image or per model and move per model (``vae_zoo.packed_batch``); their networks pack as the model's do. What
holds other state is refused until it has a packed form.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from vae_zoo.config_groups import option_name
from vae_zoo.errors import NotPackable
from vae_zoo.flows.iaf import MaskedLinear
from vae_zoo.packing.packed_conv import PackedConv
from vae_zoo.packing.packed_linear import PackedLinear
from vae_zoo.probabilistic_model import ProbabilisticModel

#: the layer types that pack, and how N of them become one
PACKED_FORMS: dict[type, Callable[[Sequence[nn.Module]], nn.Module]] = {
    nn.Linear: PackedLinear.stack,
    MaskedLinear: PackedLinear.stack,
    nn.Conv2d: PackedConv.stack,
    nn.ConvTranspose2d: PackedConv.stack,
}
#: the model's children by the config group that builds them
GROUPS = ("encoder", "latent", "likelihood", "decoder", "estimator", "flow", "prior")


def pack(models: Sequence[ProbabilisticModel]) -> ProbabilisticModel:
    """One model computing ``models`` side by side (``ProbabilisticModel.models = N``); their weights copied.
    A component whose state has no packed form is refused with one ``NotPackable`` line naming it."""
    first = models[0]
    shapes = {k: v.shape for k, v in first.state_dict().items()}
    for model in models[1:]:
        if {k: v.shape for k, v in model.state_dict().items()} != shapes:
            raise ValueError("only models of one architecture pack")
    packed, per_model = stacked(models)
    per_image = []
    for name, module in first.named_modules():
        for attribute in getattr(module, "per_image_parameters", ()):
            if isinstance(getattr(module, attribute), nn.Parameter):
                with torch.no_grad():
                    copies = torch.stack([m.get_submodule(name).get_parameter(attribute) for m in models])
                setattr(packed.get_submodule(name), attribute, nn.Parameter(copies))
                per_image.append(f"{name}.{attribute}")
    packed_layers = {name for name, m in packed.named_modules() if isinstance(m, PackedLinear | PackedConv)}
    for key in packed.state_dict():
        if key.rpartition(".")[0] not in packed_layers and key not in per_image + per_model:
            group = key.split(".")[0]
            component = option_name(group, getattr(first, group)) if group in GROUPS else group
            raise NotPackable(
                f"{component} does not pack yet: its state {key} has no packed form -- run these jobs without "
                "hydra/launcher=packed"
            )
    trained = [{name for name, p in model.named_parameters() if p.requires_grad} for model in models]
    if any(names != trained[0] for names in trained):
        raise ValueError("only models that train the same parameters pack")
    for name, parameter in packed.named_parameters():  # frozen where the models' are (``init.train=prior``)
        parameter.requires_grad_(name in trained[0])
    packed.models = packed.estimator.models = len(models)
    packed.per_image_parameters = tuple(per_image)
    return packed


def stacked(modules: Sequence[nn.Module]) -> tuple[nn.Module, list[str]]:
    """A copy of ``modules[0]`` that computes all N of them (of one architecture) side by side: each layer of
    ``PACKED_FORMS`` replaced by the N layers' packed form, and each submodule's ``per_model_state`` stacked,
    ``(N, ...)``; with the names of that state."""
    first = modules[0]
    packed = copy.deepcopy(first)
    for name, module in list(first.named_modules()):
        form = PACKED_FORMS.get(type(module))
        if form is not None:
            parent, _, attribute = name.rpartition(".")
            setattr(packed.get_submodule(parent), attribute, form([m.get_submodule(name) for m in modules]))
    per_model = []
    for name, module in first.named_modules():
        for attribute in getattr(module, "per_model_state", ()):
            with torch.no_grad():
                state = torch.stack([getattr(m.get_submodule(name), attribute) for m in modules])
            is_parameter = isinstance(getattr(module, attribute), nn.Parameter)
            # a buffer stays a buffer
            setattr(packed.get_submodule(name), attribute, nn.Parameter(state) if is_parameter else state)
            per_model.append(f"{name}.{attribute}".lstrip("."))
    return packed, per_model


def unpacked_state_dict(packed: ProbabilisticModel, n: int) -> dict[str, Tensor]:
    """Model ``n``'s state dict, as its unpacked model would hold it (copies)."""
    return {key: value[n].clone() for key, value in packed.state_dict().items()}
