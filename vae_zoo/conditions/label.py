"""The class label as the networks' extra input (Sohn et al. 2015; Kingma et al. 2014's M2 generative model).

A conditional model is ``q(z|x, y)``, ``p(x|z, y)`` with the prior component ``p(z)``, or ``p(z|y)``
(``prior=conditional_normal``): the encoder reads ``(x, c(y))`` and the decoder ``(z, c(y))``, so its bounds are
bounds on ``log p(x|y)``. ``c(y)`` is the one-hot vector ``e_y`` or a learned embedding ``W e_y``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vae_zoo.errors import ConfigError

#: ``ProbabilisticModel.given(ABSENT)``: inputs without a label, read with the zero condition
ABSENT = "absent"
#: the label of a training image whose class the model is not told (semi-supervised data, ``data.labels``)
UNLABELLED = -1


def every_class(x: Tensor, classes: int) -> tuple[Tensor, Tensor]:
    """Each image of ``x`` ``(B, ...)`` once per class, image by image: rows ``(B * classes, ...)`` and their
    labels (image ``i`` with class ``c`` on row ``i * classes + c``), so that a value per row reshaped to
    ``(B, classes)`` is per image and class, and a packed batch's rows stay each model's in turn."""
    rows = x.repeat_interleave(classes, 0)
    labels = torch.arange(classes, device=x.device).repeat(len(x))
    return rows, labels


class LabelCondition(nn.Module):
    """``c(y) = e_y`` (``embedding: null``), or ``W e_y`` with ``W`` of ``embedding`` learned rows, initialised
    ``N(0, 1)`` as ``nn.Embedding`` is; the embedding is a bias-free linear layer on the one-hot vector (the same
    lookup) so that packed models stack it as their other layers. ``out_features`` is ``c``'s width."""

    def __init__(self, classes: int, embedding: int | None = None) -> None:
        super().__init__()
        if classes < 2 or (embedding is not None and embedding < 1):
            raise ConfigError(
                f"condition=label needs at least 2 classes (the data has {classes}) and model.condition.embedding="
                f"{embedding} null or >= 1"
            )
        self.classes = classes
        self.embed = nn.Linear(classes, embedding, bias=False) if embedding else None
        if self.embed is not None:
            nn.init.normal_(self.embed.weight)
        self.out_features = embedding or classes

    def forward(self, labels: Tensor) -> Tensor:
        """``c(y)`` per label: ``(B,)`` integers in ``[0, classes)`` to ``(B, out_features)`` floats."""
        one_hot = nn.functional.one_hot(labels.long(), self.classes).float()
        return self.embed(one_hot) if self.embed is not None else one_hot

    def check(self, labels: Tensor, rows: int) -> None:
        """One line unless ``labels`` are ``rows`` integers in ``[0, classes)`` (labels a user hands in; the
        data's are checked where they are read)."""
        if (
            labels.dtype.is_floating_point
            or labels.shape != (rows,)
            or not 0 <= labels.min() <= labels.max() < self.classes
        ):
            raise ConfigError(
                f"a conditional model needs one class label per image, integers in [0, {self.classes}): got "
                f"{labels.dtype} labels of shape {tuple(labels.shape)} for {rows} images"
            )

    def absent(self, rows: int, device: torch.device) -> Tensor:
        """The zero vector for inputs that have no label (the VampPrior's pseudo-inputs)."""
        return torch.zeros(rows, self.out_features, device=device)
