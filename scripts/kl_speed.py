"""The hand-written KLs the latent families register, against torch's own registered forms of the same KL.

For the three kept (``kl_normal_standard_normal``, ``kl_one_hot_rows``, ``kl_logit_bernoulli``): forward and
backward time per call at training shapes (a batch of 128 images), the two alternated in one run, median of
``--rounds`` rounds of ``--calls`` calls each, printed as torch's time over ours; the largest difference of the
values; and, for the Bernoulli, both against float64 at logits far in the tails. torch's Bernoulli KL also
fails (IndexError) when the prior's logits broadcast against the posterior's, as a learned prior's do.

    python scripts/kl_speed.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.distributions import Bernoulli, Independent, Normal, OneHotCategorical

from vae_zoo.latents.bernoulli import LogitBernoulli, kl_logit_bernoulli
from vae_zoo.latents.categorical import OneHotRows, kl_one_hot_rows
from vae_zoo.latents.normal import StandardNormal, kl_normal_standard_normal


def normal_case(dtype=torch.float32):
    loc, raw = torch.randn(128, 32, dtype=dtype), torch.randn(128, 32, dtype=dtype)
    params = [loc.requires_grad_(), raw.requires_grad_()]
    ours = lambda: kl_normal_standard_normal(
        Normal(loc, raw.exp()), StandardNormal(torch.zeros(32, dtype=dtype), torch.ones(32, dtype=dtype))
    )
    theirs = lambda: torch.distributions.kl.kl_divergence(
        Normal(loc, raw.exp()), Normal(torch.zeros(32, dtype=dtype), torch.ones(32, dtype=dtype))
    )
    return params, ours, theirs


def categorical_case(dtype=torch.float32):
    logits, prior = (
        (torch.randn(128, 20, 10, dtype=dtype) * 3).requires_grad_(),
        torch.zeros(20, 10, dtype=dtype),
    )
    ours = lambda: kl_one_hot_rows(OneHotRows(logits), OneHotRows(prior))
    theirs = lambda: torch.distributions.kl.kl_divergence(
        Independent(OneHotCategorical(logits=logits), 1), Independent(OneHotCategorical(logits=prior), 1)
    )
    return [logits], ours, theirs


def bernoulli_case(dtype=torch.float32, scale=3.0):
    logits, prior = (
        (torch.randn(128, 200, dtype=dtype) * scale).requires_grad_(),
        torch.randn(200, dtype=dtype),
    )
    ours = lambda: kl_logit_bernoulli(LogitBernoulli(logits=logits), LogitBernoulli(logits=prior))
    # torch's masks by the prior's probabilities with the posterior's shape: it needs the prior expanded
    theirs = lambda: torch.distributions.kl.kl_divergence(
        Bernoulli(logits=logits), Bernoulli(logits=prior.expand_as(logits))
    )
    return [logits], ours, theirs


PRIOR_TAIL = torch.linspace(-20, 20, 200)


def seconds(function, params, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        function().sum().backward()
        for p in params:
            p.grad = None
    return (time.perf_counter() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    torch.manual_seed(0)
    print("| KL | torch's time / ours (forward + backward) | max abs difference of the values (float32) |")
    print("|---|---|---|")
    for name, case in (
        ("Normal || N(0, 1)", normal_case),
        ("one-hot rows", categorical_case),
        ("Bernoulli (logits)", bernoulli_case),
    ):
        params, ours, theirs = case()
        ratios = []
        for _ in range(args.rounds):
            ours_s, theirs_s = seconds(ours, params, args.calls), seconds(theirs, params, args.calls)
            ratios.append(theirs_s / ours_s)
        with torch.no_grad():
            difference = (ours() - theirs()).abs().max().item()
        print(f"| {name} | {statistics.median(ratios):.2f} | {difference:.2e} |")
    for scale in (30.0, 100.0):
        torch.manual_seed(1)
        (logits,), ours, theirs = bernoulli_case(scale=scale)
        with torch.no_grad():
            q32, p32 = LogitBernoulli(logits=logits), LogitBernoulli(logits=PRIOR_TAIL)
            q64, p64 = LogitBernoulli(logits=logits.double()), LogitBernoulli(logits=PRIOR_TAIL.double())
            reference = kl_logit_bernoulli(q64, p64)
            values = {
                "ours": kl_logit_bernoulli(q32, p32),
                "torch's": torch.distributions.kl.kl_divergence(
                    Bernoulli(logits=logits), Bernoulli(logits=PRIOR_TAIL.expand_as(logits))
                ),
            }
        report = ", ".join(
            f"{who} {(value.double() - reference).abs().max().item():.2e}"
            f"{'' if torch.isfinite(value).all() else ' (not finite)'}"
            for who, value in values.items()
        )
        print(
            f"Bernoulli logits ~ N(0, {scale:.0f}^2), prior logits in [-20, 20]: max |error| vs float64: {report}"
        )


if __name__ == "__main__":
    main()
