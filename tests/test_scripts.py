"""The speed scripts run: the benchmark prints both ratios, the GPU report says in one line when there is no GPU."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

from tests.conftest import SMALL_RUN, run_script

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.mark.parametrize("script", sorted(p.name for p in SCRIPTS.glob("*.py")))
def test_every_script_imports_against_the_package_as_it_is(script, monkeypatch):
    """A helper moved or renamed in the package breaks the scripts that import it, most of which no test runs."""
    monkeypatch.syspath_prepend(str(SCRIPTS))  # scripts import each other (gpu_report: packed_speed)
    spec = importlib.util.spec_from_file_location(f"script_{script.removesuffix('.py')}", SCRIPTS / script)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))


def test_benchmark_prints_the_ratio_to_the_user_loop_and_to_the_same_optimizer_loop(data_dir, tmp_path):
    out = tmp_path / "benchmark.md"
    result = run_script(
        "scripts/benchmark.py",
        "--models=gaussian_vae",
        "--epochs=1",
        f"--out={out}",
        "--overrides",
        f"paths.data_dir={data_dir}",
        "trainer.accelerator=cpu",
        "trainer.limit_train_batches=4",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    table = out.read_text()
    assert "ratio to the user loop" in table and "ratio to the same-optimizer loop" in table
    row = next(line for line in table.splitlines() if line.startswith("| gaussian_vae"))
    assert "| fused |" in row  # the default implementation on the CPU


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU the report measures (minutes)")
def test_gpu_report_without_a_gpu_says_so_in_one_line_and_exits_0():
    result = run_script("scripts/gpu_report.py")
    assert result.returncode == 0
    assert (
        result.stdout.strip()
        == "gpu_report: no CUDA device here, nothing to measure -- run it on a machine with a GPU"
    )


def test_iw_eval_flops_counts_two_flops_per_multiply_add_of_the_decoder(data_dir):
    """Latent 10, decoder 10-16-32-784: 2 * (10*16 + 16*32 + 32*784) = 51520 FLOP per sample decoded."""
    result = run_script(
        "scripts/iw_eval_flops.py",
        "--k=6",
        "--images=10",
        "--repeats=1",
        "--peak-size=64",
        "--overrides",
        f"paths.data_dir={data_dir}",
        "model.latent.dim=10",
        "model.decoder.hidden=[16,32]",
        "eval.iw_chunk=3",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "decoder: 51520 FLOP per sample" in result.stdout
    assert "images/s" in result.stdout and "of the peak" in result.stdout


def test_step_flops_counts_forward_and_backward_matmuls(data_dir):
    """Encoder 784-16 (head 16-8), decoder 4-16-784, batch 8: forward 2 * (784*16 + 16*8 + 4*16 + 16*784) =
    50560 FLOP an image, backward twice that less the first layer's input gradient (x needs none): 76032; so
    8 * 126592 = 1012736 FLOP a step. M2's step (8 images and 2 labelled ones a batch) runs too."""
    small = (
        "model.latent.dim=4",
        "model.encoder.hidden=[16]",
        "model.decoder.hidden=[16]",
        "data.batch_size=8",
    )
    m2 = ("experiment=m2_mnist", "model.classifier.hidden=[16]", "data.labelled_per_batch=2")
    for overrides, said in (((), "8 images a batch: 1012736 FLOP"), (m2, "10 images a batch")):
        result = run_script(
            "scripts/step_flops.py",
            "--steps=2",
            "--batches=2",
            "--peak-size=64",
            "--overrides",
            f"paths.data_dir={data_dir}",
            *overrides,
            *small,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert f"training step, {said}" in result.stdout and "of the peak" in result.stdout


def test_mutual_info_cost_prints_each_paths_time_against_the_bound(data_dir):
    result = run_script(
        "scripts/mutual_info_cost.py",
        "--images=40",
        "--k=2",
        "--rounds=1",
        "--broadcast",
        "--overrides",
        f"paths.data_dir={data_dir}",
        "model.latent.dim=4",
        "data.eval_batch_size=16",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split()[0] for line in result.stdout.splitlines()[2:]]
    assert rows == ["bound", "information", "information,"] and "of the bound" in result.stdout


def test_code_covariance_prints_each_runs_four_sums_and_total_correlation(trained_run):
    result = run_script("scripts/code_covariance.py", str(trained_run), "--images=200")
    assert result.returncode == 0, result.stderr[-2000:]
    row = next(line for line in result.stdout.splitlines() if line.startswith(f"| {trained_run} |"))
    sums = [float(cell) for cell in row.strip("| ").split(" | ")[1:]]
    assert len(sums) == 5 and all(value >= 0 for value in sums)
    assert sums[0] == pytest.approx(sums[2], abs=2e-4)  # the aggregate adds to the diagonal alone


def test_amortization_gap_prints_each_runs_bounds_and_the_gaps_between_them(trained_run):
    result = run_script(
        "scripts/amortization_gap.py", str(trained_run), "--images=40", "--steps=20", "--samples=2", "--k=4"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    row = next(line for line in result.stdout.splitlines() if line.startswith(f"| {trained_run} |"))
    encoder, refined, bound, amortization, approximation = (
        float(c) for c in row.strip("| ").split(" | ")[1:]
    )
    assert amortization == pytest.approx(encoder - refined, abs=0.015) and amortization > 0
    assert approximation == pytest.approx(refined - bound, abs=0.015)


def test_codebook_usage_prints_each_vq_runs_bound_and_how_many_codes_it_uses(tmp_path, data_dir, trained_run):
    run = tmp_path / "vq"
    trained = run_script(
        "train.py",
        *SMALL_RUN,
        "model=vq_vae",
        "model.latent.k=8",
        "trainer.max_epochs=1",
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={run}",
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    result = run_script("scripts/codebook_usage.py", str(run), "--images=100")
    assert result.returncode == 0, result.stderr[-2000:]
    row = next(line for line in result.stdout.splitlines() if line.startswith(f"| {run} |"))
    elbo, recon, kl, error, used, perplexity = (float(c) for c in row.strip("| ").split(" | ")[1:])
    assert elbo == pytest.approx(recon + kl, abs=0.015) and kl == pytest.approx(16 * math.log(8), abs=0.005)
    assert error > 0 and 1 <= used <= 8 and 1 <= perplexity <= used + 1e-6
    refused = run_script("scripts/codebook_usage.py", str(trained_run), "--images=10")
    assert refused.returncode == 1 and refused.stderr.strip().splitlines()[-1] == (
        f"error: {trained_run} is not a VQ-VAE (latent=vector_quantized): it has no codebook"
    )


def test_command_latency_times_each_command_line_both_ways_and_prints_their_ratios():
    result = run_script("scripts/command_latency.py", "--rounds=1")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split()[0] for line in result.stdout.splitlines() if ", ratio " in line]
    assert rows == ["model=transformer", "--cfg", "--help"]


def test_command_latency_stops_on_an_override_that_composes():
    result = run_script("scripts/command_latency.py", "--rounds=1", "--override=model=gumbel_vae")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("'model=gumbel_vae' exited with status 0, not 2")


def test_packed_conv_forms_times_both_forms_of_each_convolution_of_the_model(data_dir, monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))
    monkeypatch.setenv("VAE_ZOO_DATA_DIR", str(data_dir))
    from packed_conv_forms import main

    rows = main(["--cases", "conv", "--rounds", "1", "--repeats", "1"])[4:]
    layers = [row.split("`")[1] for row in rows]
    assert layers == ["encoder.net.0", "encoder.net.2", "decoder.net.5", "decoder.net.7"]
    assert all(float(row.split("**")[1]) > 0 for row in rows) and "(128, 32, 14, 14)" in rows[1]
