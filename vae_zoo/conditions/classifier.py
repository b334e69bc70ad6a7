"""``q(y|x)``: the class of an image inferred from its pixels, the inference network of the label in Kingma et al.
(2014)'s semi-supervised model M2 (``objective=semi_supervised``)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from vae_zoo.nets.conv import ConvEncoder
from vae_zoo.nets.mlp import mlp


class LabelClassifier(nn.Module):
    """``log q(y|x) = log_softmax(f(x))``: the flattened image through hidden layers (``hidden``, with
    ``activation``) and a linear layer to one logit per class."""

    def __init__(
        self,
        input_shape: Sequence[int],
        classes: int,
        hidden: Sequence[int] = (500,),
        activation: str = "ReLU",
    ) -> None:
        super().__init__()
        sizes = [math.prod(input_shape), *hidden]
        self.net = nn.Sequential(mlp(sizes, activation), nn.Linear(sizes[-1], classes))
        self.classes = classes

    def forward(self, x: Tensor) -> Tensor:
        """The logits ``(B, classes)`` of images ``(B, C, H, W)``."""
        return self.net(x.flatten(start_dim=-3))


class ConvLabelClassifier(ConvEncoder):
    """``log q(y|x) = log_softmax(f(x))``: stride-2 convolutions (``channels``) and a dense layer to ``features``,
    as ``encoder=conv`` reads an image, then a linear layer to one logit per class (colour images)."""

    config_group = "classifier"

    def __init__(
        self,
        input_shape: Sequence[int],
        classes: int,
        channels: Sequence[int] = (32, 64),
        features: int = 256,
        activation: str = "ReLU",
    ) -> None:
        super().__init__(input_shape, channels, features, activation)
        self.net.append(nn.Linear(features, classes))
        self.classes = self.out_features = classes
