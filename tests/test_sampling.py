"""``python sample.py``: the four grids for a trained run, the same pictures for the same seed, every kind
of latent (Normal, a quantile-space family, angles, a simplex), and the empirical prior quantiles."""

from __future__ import annotations

import hashlib

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from torch.distributions import Independent, Normal

from tests.conftest import FAST, run_script
from tests.test_training import SHORT
from vae_zoo import sampling
from vae_zoo.cli import sample, train
from vae_zoo.errors import ConfigError
from vae_zoo.sampling import PriorQuantiles


def test_prior_quantiles_invert_the_normal_cdf():
    quantiles = PriorQuantiles(Independent(Normal(torch.zeros(3), torch.ones(3)), 1))
    levels = torch.tensor([[0.05, 0.5, 0.95]])
    z = quantiles.quantile(levels)
    torch.testing.assert_close(z, Normal(0.0, 1.0).icdf(levels), atol=0.02, rtol=0)  # 100k draws
    torch.testing.assert_close(quantiles.cdf(z), levels, atol=1e-3, rtol=0)


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


GRIDS = ("grids.n=16", "grids.pairs=3", "grids.steps=5")
ALL = {"samples", "reconstructions", "interpolations", "traversals"}


@pytest.mark.parametrize(
    ("latent", "estimator", "size", "expected"),
    [
        ("normal", "pathwise", "model.latent.dim=4", ALL),
        ("beta", "implicit", "model.latent.dim=4", ALL),
        ("von_mises", "implicit", "model.latent.dim=4", ALL),
        ("dirichlet", "pathwise", "model.latent.n=3", ALL - {"traversals"}),
        ("von_mises_fisher", "pathwise", "model.latent.dim=4", ALL - {"traversals"}),
        ("power_spherical", "pathwise", "model.latent.dim=4", ALL - {"traversals"}),
    ],
)
def test_sample_writes_its_grids_deterministically_for_a_seed(
    latent, estimator, size, expected, tmp_path, make_cfg
):
    run_dir = tmp_path / "run"
    cfg = make_cfg(
        f"latent={latent}", f"estimator={estimator}", size, *SHORT, *FAST, "logger=[]", output_dir=run_dir
    )
    train(cfg)
    (run_dir / ".hydra").mkdir()
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")  # what Hydra saves for a command-line run
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    temperature = "grids.temperature=1.0" if "traversals" not in expected else "grids.temperature=0.8"
    digests = []
    for attempt in range(2):
        out = tmp_path / f"sample{attempt}"
        sample(make_cfg(f"ckpt_path={checkpoint}", *GRIDS, temperature, output_dir=out, config_name="sample"))
        assert {p.stem for p in out.glob("*.png")} == expected
        digests.append({p.name: digest(p) for p in out.glob("*.png")})
    assert digests[0] == digests[1]
    assert Image.open(out / "interpolations.png").size[0] > 7 * 28  # 2 ends + 5 steps, labels around them
    if "traversals" not in expected:  # points on a simplex or a sphere: no per-coordinate temperature
        refused = tmp_path / "refused"
        overrides = (f"ckpt_path={checkpoint}", *GRIDS, "grids.temperature=0.8")
        with pytest.raises(
            ConfigError, match="grids.temperature=0.8 needs a latent of scalar coordinates that vary"
        ):
            sample(make_cfg(*overrides, output_dir=refused, config_name="sample"))
        assert not list(refused.glob("*.png"))


def test_traversal_and_interpolation_grids_are_labelled_with_coordinates_values_and_endpoints(
    tmp_path, make_cfg, monkeypatch
):
    run_dir = tmp_path / "run"
    train(make_cfg("model.latent.dim=3", *SHORT, *FAST, "logger=[]", output_dir=run_dir))
    drawn = {}
    original = sampling.labelled_rows
    monkeypatch.setattr(
        sampling,
        "labelled_rows",
        lambda path, *grid: drawn.setdefault(path.stem, grid) and original(path, *grid),
    )
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    sample(make_cfg(f"ckpt_path={checkpoint}", *GRIDS, output_dir=tmp_path / "out", config_name="sample"))
    images, rows, columns, title = drawn["traversals"]
    assert images.shape[:2] == (3, 5) and rows == ["z[0]", "z[1]", "z[2]"]
    normal_quantiles = Normal(0.0, 1.0).icdf(torch.linspace(0.05, 0.95, 5))  # the N(0, I) prior's
    for row in columns:
        assert torch.allclose(torch.tensor([float(value) for value in row]), normal_quantiles, atol=0.03)
    assert "test image 0" in title
    images, rows, columns, _ = drawn["interpolations"]
    assert images.shape[:2] == (3, 7) and rows[0] == "test 0 -> 3"
    assert columns[1] == ["test 1", "t=0", "t=0.25", "t=0.5", "t=0.75", "t=1", "test 4"]
    for name in ("traversals", "interpolations"):
        assert Image.open(tmp_path / "out" / f"{name}.png").size[0] > images.shape[1] * 28


def test_the_sample_command_runs_from_a_run_directory(tmp_path, data_dir):
    run_dir = tmp_path / "run"
    trained = run_script("train.py", f"paths.data_dir={data_dir}", f"hydra.run.dir={run_dir}", *SHORT, *FAST)
    assert trained.returncode == 0, trained.stderr[-2000:]
    out = tmp_path / "pictures"
    result = run_script(
        "sample.py",
        f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={out}",
        *GRIDS,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert {p.stem for p in out.glob("*.png")} == ALL


def test_sample_without_a_checkpoint_is_one_line(tmp_path):
    result = run_script("sample.py", f"ckpt_path={tmp_path / 'missing.ckpt'}", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert "does not exist" in result.stderr


@pytest.mark.parametrize(
    "components",
    [
        ("prior=vamp", "model.prior.components=5"),
        ("flow=iaf",),
        ("model=two_layer_vae",),
        ("model=vq_vae",),
        ("model=vq_vae", "model.latent.prior=autoregressive", "model.latent.codebook_update=ema"),
    ],
)
def test_sample_draws_from_learned_priors_flows_two_layers_and_codebooks(components, tmp_path, make_cfg):
    run_dir = tmp_path / "run"
    train(make_cfg(*components, *SHORT, *FAST, "logger=[]", output_dir=run_dir))
    out = tmp_path / "pictures"
    sample(
        make_cfg(
            f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", *GRIDS, output_dir=out, config_name="sample"
        )
    )
    # a code matrix has no coordinate to sweep alone: no traversals
    assert {p.stem for p in out.glob("*.png")} == ALL - (
        {"traversals"} if "model=vq_vae" in components else set()
    )
