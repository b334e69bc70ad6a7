"""Accuracy of the Gamma CDF's shape derivative dP/da against a float64 reference.

`vae_zoo.latents.gamma_cdf.regularized_gamma_p` takes dP/da from torch's implicit standard-Gamma
gradient. The reference is a central finite difference of `torch.special.gammainc` in float64,
(P(a + h, x) - P(a - h, x)) / 2h with h = 1e-6 a. Points: shapes a from 1e-3 to 1e3, and for each the
1%, 10%, 50%, 90% and 99% quantiles x of Gamma(a, 1) (estimated from 20k samples). Printed: the median
and largest relative error per decade of a, for the derivative computed in float64 and in float32.

    python scripts/gamma_cdf_accuracy.py
"""

from __future__ import annotations

import torch

from vae_zoo.latents.gamma_cdf import regularized_gamma_p


def derivative(a: torch.Tensor, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    leaf = a.to(dtype).requires_grad_()
    (grad,) = torch.autograd.grad(regularized_gamma_p(leaf, x.to(dtype)).sum(), leaf)
    return grad.double()


def main() -> None:
    torch.manual_seed(0)
    shapes = torch.logspace(-3, 3, 61, dtype=torch.float64)
    levels = torch.tensor([0.01, 0.1, 0.5, 0.9, 0.99], dtype=torch.float64)
    samples = torch.distributions.Gamma(shapes, torch.tensor(1.0, dtype=torch.float64)).sample((20_000,))
    x = torch.quantile(samples, levels, dim=0).T.clamp_min(
        torch.finfo(torch.float32).tiny
    )  # (shapes, levels)
    a = shapes[:, None].expand_as(x).contiguous()
    h = 1e-6 * a
    reference = (torch.special.gammainc(a + h, x) - torch.special.gammainc(a - h, x)) / (2 * h)
    print("| a in | points | float64: median / max relative error | float32: median / max relative error |")
    print("|---|---|---|---|")
    for low in range(-3, 3):
        rows = (shapes >= 10.0**low) & (shapes < 10.0 ** (low + 1) + 1e-9)
        cells = []
        for dtype in (torch.float64, torch.float32):
            error = (
                (derivative(a[rows], x[rows], dtype) - reference[rows]).abs() / reference[rows].abs()
            ).flatten()
            cells.append(f"{error.median():.1e} / {error.max():.1e}")
        print(f"| [1e{low}, 1e{low + 1}] | {int(rows.sum()) * len(levels)} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
