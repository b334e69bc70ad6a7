"""Encoders and decoders work for the image shape the datamodule reports, not only 28x28."""

from __future__ import annotations

import pytest
import torch

from vae_zoo.conditions.classifier import ConvLabelClassifier
from vae_zoo.errors import ConfigError
from vae_zoo.nets.conv import ConvDecoder, ConvEncoder
from vae_zoo.nets.mlp import MLPDecoder, MLPEncoder


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (1, 30, 30), (3, 64, 48), (2, 13, 17)])
def test_conv_round_trip_keeps_any_image_shape(shape):
    encoder, decoder = ConvEncoder(shape, channels=(8, 16)), ConvDecoder(5, shape, channels=(16, 8))
    assert encoder(torch.rand(4, *shape)).shape == (4, encoder.out_features)
    assert decoder(torch.randn(3, 4, 5)).shape == (3, 4, *shape)  # leading sample dims pass through


def test_mlp_round_trip_and_leading_dims():
    encoder, decoder = MLPEncoder((1, 28, 28), hidden=(64, 32)), MLPDecoder(6, (1, 28, 28), hidden=(32, 64))
    assert encoder(torch.rand(5, 1, 28, 28)).shape == (5, 32)
    assert decoder(torch.randn(2, 5, 6)).shape == (2, 5, 1, 28, 28)


def test_too_many_conv_layers_for_a_small_image_is_one_line():
    with pytest.raises(
        ConfigError, match=r"encoder=conv: 3 stride-2 layers shrink a \(1, 4, 4\) input to nothing"
    ):
        ConvEncoder((1, 4, 4), channels=(8, 8, 8))
    with pytest.raises(
        ConfigError, match=r"^classifier=conv: 3 stride-2 layers shrink .* fewer model\.classifier\.channels"
    ):
        ConvLabelClassifier((1, 4, 4), classes=10, channels=(8, 8, 8))
    with pytest.raises(
        ConfigError, match=r"^model\.classifier\.channels=\[\] and features=16 must be positive"
    ):
        ConvLabelClassifier((1, 4, 4), classes=10, channels=(), features=16)


def test_a_conv_classifier_gives_each_image_one_logit_per_class():
    classifier = ConvLabelClassifier((3, 32, 32), classes=10, channels=(8, 16), features=32)
    assert classifier(torch.rand(5, 3, 32, 32)).shape == (5, 10)
