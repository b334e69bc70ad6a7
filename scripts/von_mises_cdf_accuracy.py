"""Accuracy of the von Mises CDF (and of its concentration derivative) against numerical integration.

`vae_zoo.latents.von_mises_cdf.von_mises_cdf` is a 20-term series below kappa = 10.5 and a corrected
normal approximation above. The reference integrates the density exp(kappa (cos t - 1)) / (2 pi i0e(kappa))
from -pi to x by adaptive quadrature in 30-digit arithmetic (mpmath), and dF/dkappa by a central finite
difference of those integrals (h = 1e-4 kappa). Points: kappa from 1e-3 to 1e4 (29, log-spaced), and
for each the 1%, 10%, 25%, 50%, 75%, 90%, 99% quantiles of x, from -pi to pi. Printed: the largest
absolute error of F and the largest relative error of dF/dkappa per decade of kappa, in float64 and float32.

    python scripts/von_mises_cdf_accuracy.py
"""

from __future__ import annotations

import mpmath
import torch

from vae_zoo.latents.von_mises_cdf import von_mises_cdf

LEVELS = (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99)


def integrated_cdf(x: float, kappa: float) -> mpmath.mpf:
    k = mpmath.mpf(kappa)
    norm = 2 * mpmath.pi * mpmath.besseli(0, k) * mpmath.exp(-k)
    breakpoints = [-mpmath.pi, 0, x] if x > 0 else [-mpmath.pi, x]
    return mpmath.quad(lambda t: mpmath.exp(k * (mpmath.cos(t) - 1)), breakpoints) / norm


def quantile(level: float, kappa: float) -> float:
    """x with F(x) = level, by bisection on the integrated CDF."""
    low, high = -3.141592653589793, 3.141592653589793
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (middle, high) if integrated_cdf(middle, kappa) < level else (low, middle)
    return (low + high) / 2


def ours(x: torch.Tensor, kappa: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    leaf = kappa.to(dtype).requires_grad_()
    value = von_mises_cdf(x.to(dtype), leaf)
    (d_kappa,) = torch.autograd.grad(value.sum(), leaf)
    return value.detach().double(), d_kappa.double()


def main() -> None:
    mpmath.mp.dps = 30
    kappas = [10 ** (e / 4) for e in range(-12, 17)]
    rows = []
    for kappa in kappas:
        for level in LEVELS:
            x = quantile(level, kappa)
            h = 1e-4 * kappa
            derivative = (integrated_cdf(x, kappa + h) - integrated_cdf(x, kappa - h)) / (2 * h)
            rows.append((kappa, x, float(integrated_cdf(x, kappa)), float(derivative)))
    kappa, x, cdf, d_kappa = (torch.tensor(column, dtype=torch.float64) for column in zip(*rows))
    print(
        "| kappa in | points | float64: max abs error of F / max rel error of dF/dkappa "
        "| float32: max abs error of F / max rel error of dF/dkappa |"
    )
    print("|---|---|---|---|")
    worst = {torch.float64: [0.0, 0.0], torch.float32: [0.0, 0.0]}
    for low in range(-3, 4):
        selected = (kappa >= 10.0**low * (1 - 1e-9)) & (kappa < 10.0 ** (low + 1) * (1 - 1e-9))
        if low == 3:
            selected = kappa >= 1e3 * (1 - 1e-9)
        cells = []
        for dtype in (torch.float64, torch.float32):
            value, derivative = ours(x[selected], kappa[selected], dtype)
            error = (value - cdf[selected]).abs().max().item()
            scale = d_kappa[selected].abs().clamp_min(1e-12)
            relative = ((derivative - d_kappa[selected]).abs() / scale).max().item()
            worst[dtype] = [max(worst[dtype][0], error), max(worst[dtype][1], relative)]
            cells.append(f"{error:.1e} / {relative:.1e}")
        upper = "1e4]" if low == 3 else f"1e{low + 1})"
        print(f"| [1e{low}, {upper} | {int(selected.sum())} | {cells[0]} | {cells[1]} |")
    for dtype, (error, relative) in worst.items():
        print(
            f"{dtype}: largest |F - F_integrated| {error:.1e}, largest relative dF/dkappa error {relative:.1e}"
        )


if __name__ == "__main__":
    main()
