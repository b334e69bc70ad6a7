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


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (1, 30, 30)])
def test_a_grid_encoder_keeps_its_last_map_and_a_grid_decoder_reads_one_in_place(shape):
    """The grid's position (0, 0) is the images' top-left corner both ways: the encoder's features there see only
    the top-left pixels, and the decoder's pixels far from it do not see the codes there."""
    encoder = ConvEncoder(shape, channels=(8, 16), grid=True)
    height, width = shape[1] // 4, shape[2] // 4
    assert encoder.out_features == 16 * height * width and encoder.grid_shape == (height, width)
    assert ConvEncoder(shape, channels=(8, 16)).grid_shape is None  # a dense layer: no grid
    images = torch.rand(2, *shape)
    changed = images.clone()
    changed[:, :, -8:, -8:] = torch.rand(2, shape[0], 8, 8)  # the bottom-right corner
    maps, changed_maps = (encoder(x).unflatten(1, (16, height, width)) for x in (images, changed))
    assert torch.equal(maps[:, :, : height - 3, : width - 3], changed_maps[:, :, : height - 3, : width - 3])
    assert not torch.equal(maps, changed_maps)

    start = (-(-shape[1] // 4), -(-shape[2] // 4))
    decoder = ConvDecoder(5 * start[0] * start[1], shape, channels=(16, 8), grid=True)
    z = torch.randn(3, 2, 5, *start)
    changed_z = z.clone()
    changed_z[..., 0, 0] = torch.randn(3, 2, 5)  # every channel at position (0, 0)
    out, changed_out = (decoder(codes.flatten(-3)) for codes in (z, changed_z))
    assert out.shape == (3, 2, *shape)  # leading sample dims pass through
    # a 3x3 convolution reaches positions <= 1, two transposed ones (kernel 4, stride 2) pixels <= 2 * (2 * 1 + 2) + 2
    assert torch.equal(out[..., 11:, :], changed_out[..., 11:, :]) and torch.equal(
        out[..., 11:], changed_out[..., 11:]
    )
    assert not torch.equal(out[..., :11, :11], changed_out[..., :11, :11])


def test_a_grid_that_does_not_fit_and_a_condition_on_a_grid_are_one_line():
    with pytest.raises(
        ConfigError, match=r"^model\.decoder\.grid=true: the latent's 50 coordinates are not a 7 x 7 grid"
    ):
        ConvDecoder(50, (1, 28, 28), channels=(16, 8), grid=True)
    for part, build in (
        ("encoder", lambda: ConvEncoder((1, 28, 28), grid=True, condition_features=10)),
        ("decoder", lambda: ConvDecoder(49, (1, 28, 28), grid=True, condition_features=10)),
    ):
        with pytest.raises(
            ConfigError, match=rf"^model\.{part}\.grid=true has no dense layer for the condition"
        ):
            build()
