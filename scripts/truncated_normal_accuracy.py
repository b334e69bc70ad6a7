"""The truncated Normal against scipy.stats.truncnorm, as a table: the largest error of each quantity over a grid
of locations inside the interval [-2, 2], at its ends and 1, 5, 20 and 50 scales beyond either end, scales 0.3,
1 and 2, in float32 and float64. log_prob and cdf at scipy's 1%, 10%, 50%, 90%, 99% quantiles (absolute); mean
in standard deviations; variance relative; entropy absolute, against -E[log p] by quadrature (scipy's own
entropy is nan out there); samples: 200,000 draws, the mean's error in standard errors and the variance ratio.

    python scripts/truncated_normal_accuracy.py
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from scipy.stats import truncnorm

from vae_zoo.latents.truncated_normal import TruncatedNormal

LOW, HIGH = -2.0, 2.0


def errors(loc: float, scale: float, dtype: torch.dtype) -> dict[str, float]:
    ref = truncnorm((LOW - loc) / scale, (HIGH - loc) / scale, loc=loc, scale=scale)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        entropy = ref.expect(lambda x: -ref.logpdf(x))
    q = TruncatedNormal(torch.tensor(loc, dtype=dtype), torch.tensor(scale, dtype=dtype), LOW, HIGH)
    at = torch.tensor(ref.ppf([0.01, 0.1, 0.5, 0.9, 0.99]), dtype=dtype)
    points = at.double().numpy()
    torch.manual_seed(0)
    draws = q.sample((200_000,)).double()
    return {
        "log_prob": np.abs(q.log_prob(at).double().numpy() - ref.logpdf(points)).max(),
        "cdf": np.abs(q.cdf(at).double().numpy() - ref.cdf(points)).max(),
        "mean (sd)": abs(q.mean.item() - ref.mean()) / ref.std(),
        "variance (rel.)": abs(q.variance.item() / ref.var() - 1),
        "entropy": abs(q.entropy().item() - entropy),
        "sample mean (s.e.)": abs(draws.mean().item() - ref.mean()) / (ref.std() / math.sqrt(len(draws))),
        "sample variance (rel.)": abs(draws.var().item() / ref.var() - 1),
    }


def main() -> None:
    grid = [
        (loc, scale)
        for scale in (0.3, 1.0, 2.0)
        for loc in (
            0.0,
            1.5,
            -1.9,
            *(HIGH + k * scale for k in (1, 5, 20, 50)),
            *(LOW - k * scale for k in (1, 5, 20, 50)),
        )
    ]
    worst = {dtype: {} for dtype in (torch.float32, torch.float64)}
    for dtype, table in worst.items():
        for loc, scale in grid:
            for name, value in errors(loc, scale, dtype).items():
                table[name] = max(table.get(name, 0.0), value)
    names = list(worst[torch.float32])
    print(f"largest error over {len(grid)} (loc, scale) pairs")
    print("| dtype | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for dtype, table in worst.items():
        print(
            f"| {str(dtype).removeprefix('torch.')} | " + " | ".join(f"{table[n]:.1e}" for n in names) + " |"
        )


if __name__ == "__main__":
    main()
