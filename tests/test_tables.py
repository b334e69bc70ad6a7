"""``data=table`` and ``likelihood=table``: reading, splitting, the density in the data's units, one-line refusals,
and a run end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import run_script
from torch.distributions import Bernoulli, Normal

import vae_zoo
from vae_zoo.data.files import DataFileError
from vae_zoo.data.table import Columns, TableDataModule, read_table
from vae_zoo.errors import ConfigError
from vae_zoo.likelihoods.table import TableLikelihood

TINY = (
    "model.encoder.hidden=[16]",
    "model.decoder.hidden=[16]",
    "model.latent.dim=2",
    "data.batch_size=16",
    "trainer.max_epochs=2",
    "eval.iw_samples=8",
    "trainer.accelerator=cpu",
)


def write_table(path, rows: int = 120, seed: int = 0) -> np.ndarray:
    """A CSV with a header: two correlated real columns on very different scales and one 0/1 column."""
    rng = np.random.default_rng(seed)
    a = rng.normal(50.0, 10.0, rows)
    values = np.stack([a, 0.001 * a + rng.normal(0, 0.002, rows), (a > 50).astype(float)], axis=1)
    lines = ["height,weight,tall"] + [f"{float(h)!r},{float(w)!r},{int(t)}" for h, w, t in values]
    path.write_text("\n".join(lines) + "\n")
    return values


def test_a_csv_is_read_with_its_header_split_by_seed_and_its_columns_kinds_found(tmp_path):
    values = write_table(tmp_path / "t.csv")
    names, read = read_table(tmp_path / "t.csv")
    assert names == ["height", "weight", "tall"] and np.array_equal(read, values)
    datamodule = TableDataModule(str(tmp_path / "t.csv"), seed=3)
    assert datamodule.input_shape == (1, 1, 3)
    assert {split: len(rows) for split, rows in datamodule.splits.items()} == {
        "val": 12,
        "test": 12,
        "train": 96,
    }
    rows = torch.cat(list(datamodule.splits.values())).flatten(1).double()
    assert sorted(rows.tolist()) == sorted(torch.tensor(values).float().double().tolist())  # each row once
    columns = datamodule.columns()
    assert columns.binary.tolist() == [False, False, True]
    train = datamodule.splits["train"].flatten(1).double()
    torch.testing.assert_close(columns.means[:2], train[:, :2].mean(0).float())
    torch.testing.assert_close(columns.scales[:2], train[:, :2].std(0, correction=0).float())
    again = TableDataModule(str(tmp_path / "t.csv"), columns=["weight", 2], seed=3)
    assert again.names == ["weight", "tall"] and torch.equal(
        again.splits["test"][..., 0], datamodule.splits["test"][..., 1]
    )
    np.save(tmp_path / "t.npy", values)
    assert np.array_equal(read_table(tmp_path / "t.npy")[1], values)


def test_the_likelihood_is_the_density_of_the_row_in_its_own_units():
    """-log p(x|z) = -sum_j log N(x_j; m_j + s_j mu_j, s_j sigma_j) - sum_binary log Bernoulli(x_j; sigmoid(l_j))."""
    likelihood = TableLikelihood((1, 1, 3))
    means, scales = torch.tensor([50.0, 0.05, 0.0]), torch.tensor([10.0, 0.01, 1.0])
    likelihood.adopt(Columns(["a", "b", "c"], torch.tensor([False, False, True]), means, scales))
    with torch.no_grad():
        likelihood.log_sigma.copy_(torch.tensor([-0.3, 0.2, 0.0]))
    params = torch.randn(5, 4, 1, 1, 3)  # samples x rows
    x = torch.stack(
        [
            means[0] + scales[0] * torch.randn(4),
            means[1] + scales[1] * torch.randn(4),
            torch.tensor([0.0, 1, 1, 0]),
        ],
        -1,
    )[:, None, None]
    sigma = torch.exp(likelihood.log_sigma.flatten()[:2])
    expected = (
        -Normal(means[:2] + scales[:2] * params[..., :2], scales[:2] * sigma)
        .log_prob(x[..., :2])
        .sum((-3, -2, -1))
    )
    expected = expected - Bernoulli(logits=params[..., 2]).log_prob(x[..., 2]).sum((-2, -1))
    torch.testing.assert_close(likelihood.nll(params, x), expected, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(likelihood.mean(params)[..., :2], means[:2] + scales[:2] * params[..., :2])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "a,b\n1,2\n3,x\n",
            r"t.csv line 3, column 2 \(b\): 'x' is not a finite number -- fill or drop that row",
        ),
        ("a,b\n1,2\n3,nan\n", r"t.csv line 3, column 2 \(b\): 'nan' is not a finite number"),
        ("1,2\n3,4,5\n", r"t.csv line 2 has 3 cells, the first row 2 -- every row needs 2"),
        ("", r"t.csv holds no rows"),
        ("a,b\n", r"t.csv holds a header and no rows"),
    ],
)
def test_bad_csv_files_are_one_line_naming_the_row_and_column(tmp_path, content, message):
    (tmp_path / "t.csv").write_text(content)
    with pytest.raises(DataFileError, match=message) as refusal:
        read_table(tmp_path / "t.csv")
    assert "\n" not in str(refusal.value)


def test_bad_array_files_are_one_line(tmp_path):
    np.save(tmp_path / "objects.npy", np.array([[1, "a"]], dtype=object))
    with pytest.raises(
        DataFileError, match=r"objects.npy is not a readable table \(Object arrays cannot be loaded"
    ):
        read_table(tmp_path / "objects.npy")
    np.save(tmp_path / "flat.npy", np.arange(4.0))
    with pytest.raises(DataFileError, match=r"flat.npy holds a float64 array of shape \(4,\)"):
        read_table(tmp_path / "flat.npy")
    np.savez(tmp_path / "inf.npz", rows=np.array([[1.0, math.inf]]))
    with pytest.raises(DataFileError, match=r"inf.npz row 1, column 2: inf is not a finite number"):
        read_table(tmp_path / "inf.npz")


def one_error_line(result) -> str:
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    (line,) = result.stderr.strip().splitlines()
    return line


def test_a_table_trains_evaluates_and_loads_in_its_own_units(tmp_path):
    values = write_table(tmp_path / "t.csv", rows=200)
    run = tmp_path / "run"
    result = run_script(
        "train.py", "data=table", f"data.path={tmp_path / 't.csv'}", *TINY, f"hydra.run.dir={run}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert (
        metrics["data"] == "table"
        and metrics["likelihood"] == "table"
        and math.isfinite(metrics["test/nll_iw"])
    )
    evaluated = run_script(
        "eval.py",
        f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
        "eval.iw_samples=8",
        f"hydra.run.dir={tmp_path / 'eval'}",
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    model = vae_zoo.load(run)
    torch.testing.assert_close(
        model.likelihood.means.flatten()[0], torch.tensor(values[:, 0]).float().mean(), atol=3.0, rtol=0
    )
    samples = model.sample(500).flatten(1)
    assert samples.shape == (500, 3) and set(samples[:, 2].unique().tolist()) <= {0.0, 1.0}
    assert 30 < samples[:, 0].mean() < 70  # in the data's units (standardized, it would be near 0)


def test_bad_tables_and_conv_encoders_stop_before_anything_is_written(tmp_path):
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n3,oops\n")
    result = run_script(
        "train.py",
        "data=table",
        f"data.path={tmp_path / 'bad.csv'}",
        *TINY,
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert (
        one_error_line(result)
        == f"error: {tmp_path / 'bad.csv'} line 3, column 2 (b): 'oops' is not a finite number -- fill or drop that row"
    )
    assert not (tmp_path / "run" / "checkpoints").exists()
    write_table(tmp_path / "t.csv")
    result = run_script(
        "train.py",
        "data=table",
        f"data.path={tmp_path / 't.csv'}",
        "encoder=conv",
        *TINY[1:],
        f"hydra.run.dir={tmp_path / 'conv'}",
    )
    assert one_error_line(result) == (
        "error: encoder=conv: 2 stride-2 layers shrink a (1, 1, 3) input to nothing -- use fewer "
        "model.encoder.channels, or encoder=mlp (a table's rows: always)"
    )
    write_table(tmp_path / "val.csv")
    (tmp_path / "wide.csv").write_text("a,b,c,d\n1,2,3,4\n")
    with pytest.raises(
        DataFileError,
        match=r"wide.csv has 4 columns and .*t.csv 3 -- the split files must share their columns",
    ):
        TableDataModule(str(tmp_path / "t.csv"), val_path=str(tmp_path / "wide.csv"))
    with pytest.raises(
        ConfigError,
        match=r"data.columns: 'age' is not a column of the table; use the header's names \(height, weight, tall\)",
    ):
        TableDataModule(str(tmp_path / "t.csv"), columns=["age"])
