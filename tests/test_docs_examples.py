"""The worked examples of docs/howto/adding-a-component.md: written out as the one ``.py`` and one ``.yaml``
each names, with nothing else changed, they train, and a wrong pairing names the new option."""

from __future__ import annotations

import importlib.util
import math
import re
import runpy
import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import FAST, ROOT
from vae_zoo.cli import train, user_error
from vae_zoo.config_groups import CONFIG_DIR
from vae_zoo.errors import ConfigError

BLOCK = re.compile(r'```(?:python|yaml) title="([^"]+)"\n(.*?)```', re.DOTALL)
EXAMPLES = dict(BLOCK.findall((ROOT / "docs" / "howto" / "adding-a-component.md").read_text()))
RUNS = {
    "estimator": ("model=gumbel_vae", "estimator=softmax_straight_through"),
    "latent": ("latent=laplace",),
    "likelihood": ("likelihood=tempered_bernoulli",),
    "objective": ("objective=multi_sample_elbo",),
}


@pytest.fixture
def with_examples(tmp_path, monkeypatch):
    """The package's configs plus the examples' ``.yaml`` files, and the examples' modules importable
    under the names their ``.py`` paths give them."""
    conf = tmp_path / "conf"
    shutil.copytree(CONFIG_DIR, conf)
    for path, text in EXAMPLES.items():
        relative = Path(path)
        if relative.suffix == ".yaml":
            (conf / relative.relative_to("vae_zoo/conf")).write_text(text)
            continue
        file = tmp_path / relative.name
        file.write_text(text)
        name = ".".join(relative.with_suffix("").parts)
        spec = importlib.util.spec_from_file_location(name, file)
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, name, module)
        spec.loader.exec_module(module)
    for module in ("vae_zoo.config_groups", "vae_zoo.compose"):
        monkeypatch.setattr(f"{module}.CONFIG_DIR", conf)


def test_the_examples_are_one_py_and_one_yaml_for_each_axis():
    packages = sorted(Path(p).parent.name for p in EXAMPLES if p.endswith(".py"))
    groups = sorted(Path(p).parent.name for p in EXAMPLES if p.endswith(".yaml"))
    assert packages == ["estimators", "latents", "likelihoods", "objectives"]
    assert groups == sorted(RUNS)


@pytest.mark.parametrize("axis", RUNS)
def test_each_worked_example_trains(axis, with_examples, make_cfg):
    metrics = train(make_cfg("debug=fdr", *RUNS[axis], *FAST))
    assert all(math.isfinite(metrics[name]) for name in ("val/elbo", "test/elbo", "test/nll_iw"))


def _refusal(cfg) -> str:
    with pytest.raises(Exception) as raised:  # Hydra wraps it; the CLI unwraps it the same way
        train(cfg)
    assert isinstance(user_error(raised.value), ConfigError)
    return str(user_error(raised.value))


def test_the_new_estimator_is_refused_where_it_cannot_work_and_named_in_the_choices(with_examples, make_cfg):
    assert _refusal(make_cfg("debug=fdr", "estimator=softmax_straight_through", *FAST)).startswith(
        "estimator=softmax_straight_through does not pair with latent=normal: it needs categorical logits, "
        "which Normal posteriors lack; choose one of: "
    )
    refusal = _refusal(make_cfg("debug=fdr", "model=gumbel_vae", "objective=iwae", *FAST))
    assert "estimator=softmax_straight_through" in refusal.split("choose one of: ")[1]


def test_the_python_api_pages_example_runs_and_prints_what_the_page_shows(data_dir, tmp_path, capsys):
    page = (ROOT / "docs" / "python-api.md").read_text()
    example = dict(BLOCK.findall(page))["example"]
    script = tmp_path / "python_api_example.py"
    script.write_text(example)
    runpy.run_path(str(script), init_globals={"OUTPUT": tmp_path})
    printed = capsys.readouterr().out.splitlines()
    shown = re.search(r"```text\n(.*?)```", page, re.DOTALL).group(1).splitlines()
    assert [line.split()[0] for line in printed if line.strip()][-5:] == [line.split()[0] for line in shown]
    assert (tmp_path / "gamma" / "checkpoints" / "last.ckpt").is_file()
