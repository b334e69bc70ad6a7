"""The component packages sit below the model: none imports the LightningModule's package, the probabilistic
model's module, or Lightning, not even for type checking. Objectives and priors receive the model as the
``vae_zoo.forward_path.ForwardPath`` protocol."""

from __future__ import annotations

import ast

import pytest

from tests.conftest import ROOT

COMPONENT_PACKAGES = ("objectives", "priors", "flows", "estimators", "latents", "likelihoods")
ABOVE_THE_COMPONENTS = ("vae_zoo.models", "vae_zoo.probabilistic_model", "pytorch_lightning", "lightning")


def imported_modules(path) -> set[str]:
    """Every module a file imports, at any depth (inside ``if TYPE_CHECKING:`` and functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize("package", COMPONENT_PACKAGES)
def test_no_component_package_imports_the_model_or_lightning(package):
    files = sorted((ROOT / "vae_zoo" / package).glob("*.py"))
    assert files
    offending = {
        f"{path.name}: {module}"
        for path in files
        for module in imported_modules(path)
        if module.startswith(ABOVE_THE_COMPONENTS)
    }
    assert not offending


def test_the_rule_sees_a_type_checking_import():
    source = ROOT / "tests" / "fixtures" / "type_checking_import.py"
    assert "vae_zoo.models.vae.VAE" in imported_modules(source)
