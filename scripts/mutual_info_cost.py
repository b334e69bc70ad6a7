"""What the mutual information adds to a test: its estimate against the test's importance-weighted bound.

``test/mutual_info`` evaluates every test image's posterior at every image's sample, N^2 densities
(``vae_zoo.mutual_information``), where the bound ``test/nll_iw`` decodes k samples of each image. This script
builds the model ``python train.py <overrides>`` builds (untrained: the work does not depend on the weights),
takes ``--images`` test images, and times in one process, alternating, ``--rounds`` times each:

    bound        the IW bound over the images with k = --k samples (eval.iw_chunk at a time), as the test does
    information  gathering the images' posteriors and samples and the estimate over them

and prints the median times' ratio. For a family with a linear form (the Normal, Gamma, von Mises, ...) the pairs
are one matrix product per batch of posteriors; ``--broadcast`` also times the same posteriors through ``log_prob``
broadcast over the pairs (``broadcast_log_probs``, the path of a family without one).

    python scripts/mutual_info_cost.py                                   # default model, 10,000 images, k = 100
    python scripts/mutual_info_cost.py --k 1000 --broadcast
    python scripts/mutual_info_cost.py --overrides latent=von_mises_fisher model.latent.dim=11
    python scripts/mutual_info_cost.py --broadcast --overrides model=gamma_vae
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from iw_eval_flops import built_on_the_cpu

from vae_zoo.mutual_information import AggregatePosterior, broadcast_log_probs


def information_seconds(model, batches: list[torch.Tensor], broadcast: bool) -> float:
    """Gather each batch's posterior and exact sample, then estimate (each pair's density by ``log_prob``
    broadcast where ``broadcast``)."""
    start = time.perf_counter()
    aggregate = AggregatePosterior(broadcast_log_probs) if broadcast else AggregatePosterior()
    for x in batches:
        q = model.posterior(x)
        aggregate.add(q, q.sample(), torch.zeros(len(x)), 1)
    aggregate.estimates()
    return time.perf_counter() - start


def bound_seconds(model, batches: list[torch.Tensor], k: int) -> float:
    start = time.perf_counter()
    for x in batches:
        model.importance_weighted_nll(x, k)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--overrides", nargs="*", default=[])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--broadcast", action="store_true", help="also the pairs through log_prob broadcast")
    args = parser.parse_args(argv)
    datamodule, trained = built_on_the_cpu([f"eval.iw_samples={args.k}", *args.overrides])
    model = trained.model.eval()
    images = datamodule.sample_images("test", args.images)
    batches = list(images.split(datamodule.eval_batch_size))
    paths = {"information": lambda: information_seconds(model, batches, broadcast=False)}
    if args.broadcast:
        paths["information, log_prob broadcast"] = lambda: information_seconds(model, batches, broadcast=True)
    times: dict[str, list[float]] = {"bound": [], **{name: [] for name in paths}}
    with torch.no_grad():
        for _ in range(args.rounds):
            times["bound"].append(bound_seconds(model, batches, args.k))
            for name, seconds in paths.items():
                times[name].append(seconds())
    bound = statistics.median(times["bound"])
    print(
        f"{' '.join(args.overrides) or 'default model'}, {len(images)} test images, {torch.get_num_threads()} "
        f"threads, {platform.processor() or platform.machine()}, torch {torch.__version__}"
    )
    print(f"{'':32s} {'median s':>9s} {'of the bound':>13s}")
    for name, values in times.items():
        print(
            f"{name + (f' (k = {args.k})' if name == 'bound' else ''):32s} {statistics.median(values):9.2f} "
            f"{statistics.median(values) / bound:13.3f}"
        )


if __name__ == "__main__":
    main()
