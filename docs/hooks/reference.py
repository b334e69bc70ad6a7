"""MkDocs hook: the generated parts of the site, written at build time from ``vae_zoo/conf/`` and the code.

A page that holds ``<!-- generated: NAME -->`` gets the markdown of ``GENERATORS[NAME]`` there:
``components`` (every option of every config group: its class's docstring, its settings with their
defaults and the YAML's own comments), ``settings`` (the top-level keys of train.yaml, eval.yaml and
sample.yaml), ``pairings`` (which estimator trains which latent family, and which likelihood fits which
pixels, asked of the components themselves). A new component's ``.yaml`` appears on its next build; no
page lists components by hand. ``readme``: the front page is README.md itself.
"""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

from hydra.utils import get_class
from omegaconf import OmegaConf

from vae_zoo.capabilities import FIXED_PARAMETERS
from vae_zoo.config_groups import CONFIG_DIR, options
from vae_zoo.estimators.estimator import Estimator
from vae_zoo.latents.family import LatentFamily
from vae_zoo.likelihoods.likelihood import PIXELS, Likelihood
from vae_zoo.pairing import family_name

MARKER = re.compile(r"<!-- generated: (\w+) -->")
LINE = re.compile(r"^(?P<indent>\s*)(?P<key>[\w.@/]+):(?P<value>[^#]*?)\s*(#\s?(?P<comment>.*))?$")
#: what each group is for, in the order the page lists them; a group not named here is listed after them
GROUPS = {
    "data": "The dataset, its splits and what its pixels are (`data.<key>=...`).",
    "encoder": "Image to features (`model.encoder.<key>=...`).",
    "latent": "Features to q(z|x); the prior, the KL, how a sample enters the decoder (`model.latent.<key>=...`).",
    "prior": "p(z) as a component: the family's own, or a learned one (`model.prior.<key>=...`).",
    "flow": "Invertible transforms of the posterior's sample, amortised by the encoder (`model.flow.<key>=...`).",
    "estimator": "How a sample of q(z|x) carries gradient (`model.estimator.<key>=...`).",
    "decoder": "Latent sample to the likelihood's parameters (`model.decoder.<key>=...`).",
    "likelihood": "p(x|z) on the decoder's output; unset, the one made for the data's pixels (`model.likelihood.<key>=...`).",
    "condition": "What the networks condition on: nothing, or the class label (`model.condition.<key>=...`).",
    "classifier": "q(y|x), the label inferred from the image, for semi-supervised training (`model.classifier.<key>=...`).",
    "discriminator": "The total correlation's discriminator, for FactorVAE (`model.discriminator.<key>=...`).",
    "objective": "The training loss (`objective.<key>=...`).",
    "model": "Presets of the shared VAE: a latent family, its usual estimator and the callbacks it needs.",
    "optimizer": "`model.optimizer.<key>=...`",
    "scheduler": "Learning-rate schedules (`model.scheduler.<key>=...`); none by default.",
    "trainer": "The Lightning Trainer (`trainer.<key>=...`).",
    "callbacks": "Lightning callbacks (`callbacks.<name>.<key>=...`).",
    "logger": "Experiment trackers; several at once with `logger=[tensorboard,mlflow]`.",
    "experiment": "Recorded reproductions: complete setups, `python train.py experiment=<name>`.",
    "debug": "Quick checks.",
    "hparams_search": "Hyperparameter searches (Hydra sweepers).",
    "paths": "Where data and runs live.",
    "hydra": "Run directories, logging, sweep summaries.",
    "hydra/launcher": "How a multirun's jobs are launched.",
}


def comments(path: Path) -> tuple[str, dict[str, str]]:
    """The file's leading comment (its description) and ``{dotted key: inline comment}``."""
    leading, found, stack = [], {}, []
    for raw in path.read_text().splitlines():
        if raw.startswith("#"):
            if not found and not stack:
                text = raw.lstrip("#").strip()
                if not text.startswith("@package"):
                    leading.append(text)
            continue
        match = LINE.match(raw)
        if not match or raw.lstrip().startswith("- "):
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match["key"]))
        if match["comment"]:
            found[".".join(key for _, key in stack)] = match["comment"].strip()
    return " ".join(line for line in leading if line), found


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        items = {}
        for key, value in node.items():
            if key in ("defaults", "_target_", "_partial_") and not prefix:
                continue
            items.update(flatten(value, f"{prefix}{key}."))
        return items if items or not prefix else {prefix[:-1]: {}}
    return {prefix[:-1]: node}


def shown(value: Any) -> str:
    if value is None:
        return "`null`"
    if isinstance(value, (list, dict)):
        return f"`{json.dumps(value)}`"
    return f"`{str(value).lower() if isinstance(value, bool) else value}`"


def cell(text: str) -> str:
    """``text`` inside a markdown table cell."""
    return prose(text).replace("|", "\\|")


def prose(text: str) -> str:
    """A YAML comment as markdown text: ``<data_dir>`` is a placeholder, not an HTML tag."""
    return text.replace("<", "&lt;").replace(">", "&gt;")


def chosen_groups(defaults: list) -> list[str]:
    """What an option's defaults list chooses: ``override /encoder@_global_.encoder: conv`` -> ``encoder=conv``,
    ``/callbacks/temperature_annealing`` -> ``callbacks/temperature_annealing``."""
    chosen = []
    for entry in defaults:
        if isinstance(entry, dict):
            for key, value in entry.items():
                group = key.removeprefix("override ").strip().lstrip("/").split("@")[0]
                chosen.append(f"{group}={value}")
        elif entry != "_self_":
            chosen.append(str(entry).lstrip("/"))
    return chosen


def summary(target: str | None) -> str:
    """The first paragraph of the target class's docstring, on one line."""
    if not target:
        return ""
    try:
        doc = inspect.getdoc(get_class(target)) or ""
    except (ImportError, ValueError, AttributeError):
        return ""
    return " ".join(doc.split("\n\n")[0].split())


def group_names() -> list[str]:
    found = sorted(
        str(path.parent.relative_to(CONFIG_DIR))
        for path in CONFIG_DIR.rglob("*.yaml")
        if path.parent != CONFIG_DIR
    )
    unique = list(dict.fromkeys(found))
    return [g for g in GROUPS if g in unique] + [g for g in unique if g not in GROUPS]


def option_section(group: str, path: Path) -> list[str]:
    config = OmegaConf.to_container(OmegaConf.load(path))
    description, notes = comments(path)
    target = config.get("_target_") if isinstance(config, dict) else None
    lines = [f"### `{group}={path.stem}`", ""]
    if target:
        lines += [f"`{target}`" + (f" — {summary(target)}" if summary(target) else ""), ""]
    if description:
        lines += [prose(description), ""]
    chosen = chosen_groups(config.get("defaults", [])) if isinstance(config, dict) else []
    if chosen:
        lines += ["Also chooses: " + ", ".join(f"`{choice}`" for choice in chosen), ""]
    settings = flatten(config) if isinstance(config, dict) else {}
    if settings:
        lines += ["| setting | default | |", "|---|---|---|"]
        for key, value in settings.items():
            lines.append(f"| `{key}` | {cell(shown(value))} | {cell(notes.get(key, ''))} |")
        lines.append("")
    return lines


def components() -> str:
    lines = []
    for group in group_names():
        files = sorted((CONFIG_DIR / group).glob("*.yaml"))
        lines += [f"## {group}", "", GROUPS.get(group, ""), ""]
        lines += ["Options: " + ", ".join(f"`{f.stem}`" for f in files), ""]
        for path in files:
            lines += option_section(group, path)
    return "\n".join(lines)


def settings() -> str:
    lines = []
    for name, what in (
        ("train", "`python train.py`"),
        ("eval", "`python eval.py ckpt_path=...`"),
        ("sample", "`python sample.py ckpt_path=...`"),
    ):
        path = CONFIG_DIR / f"{name}.yaml"
        config = OmegaConf.to_container(OmegaConf.load(path))
        _, notes = comments(path)
        defaults = [
            d if isinstance(d, str) else ", ".join(f"{k}={v}" for k, v in d.items())
            for d in config.get("defaults", [])
        ]
        lines += [
            f"## {name}.yaml: {what}",
            "",
            "Defaults: " + ", ".join(f"`{d}`" for d in defaults if d != "_self_"),
            "",
        ]
        lines += ["| setting | default | |", "|---|---|---|"]
        for key, value in flatten(
            {k: v for k, v in config.items() if k not in ("defaults", "hydra")}
        ).items():
            lines.append(f"| `{key}` | {cell(shown(value))} | {cell(notes.get(key, ''))} |")
        lines.append("")
    return "\n".join(lines)


def latent_families() -> dict:
    """Every ``latent=`` option built on 4 input features, to ask its posterior what it offers."""
    return {
        name: get_class(config["_target_"])(
            in_features=4, **{k: v for k, v in config.items() if k != "_target_"}
        )
        for name, config in options("latent").items()
    }


def pairings() -> str:
    latents = latent_families()
    estimators = {name: get_class(config["_target_"]) for name, config in options("estimator").items()}
    intro = (
        "Which estimator trains which latent family: each estimator's `requires`, asked of the family's posterior "
        "(the check `python train.py` makes at start-up). `exact`: the sample lies in the posterior's support, which "
        "objectives that evaluate log q(z) at it (`iwae`, `elbo` with `kl: mc`) need. `dreg`: the estimator is "
        "reparameterized and the posterior's parameters are tensors, which `objective.gradient=dreg` needs."
    )
    lines = [
        intro,
        "",
        "| latent (posterior) | " + " | ".join(f"`{name}`" for name in estimators) + " |",
        "|---|" + "---|" * len(estimators),
    ]
    for name, latent in latents.items():
        assert isinstance(latent, LatentFamily)
        q = latent.probe_posterior()
        cells = []
        for cls in estimators.values():
            assert issubclass(cls, Estimator)
            dreg = ", dreg" if cls.reparameterized and FIXED_PARAMETERS.met_by(q) else ""
            cells.append(
                ("✓ exact" + dreg if cls.exact_samples else "✓ relaxed") if cls.requires.met_by(q) else "–"
            )
        lines.append(f"| `{name}` ({family_name(q)}) | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Which prior and which flow fits which latent family (each one's `requires`, asked of the posterior):",
        "",
    ]
    attachments = {f"prior={n}": c for n, c in options("prior").items()} | {
        f"flow={n}": c for n, c in options("flow").items() if c
    }
    lines += [
        "| latent | " + " | ".join(f"`{n}`" for n in attachments) + " |",
        "|---|" + "---|" * len(attachments),
    ]
    for name, latent in latents.items():
        q = latent.probe_posterior()
        cells = ["✓" if get_class(c["_target_"]).requires.met_by(q) else "–" for c in attachments.values()]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    lines += ["", "Which likelihood is a density of which pixels (each likelihood's `fits`):", ""]
    lines += ["| likelihood | " + " | ".join(f"`{p}`" for p in PIXELS) + " |", "|---|" + "---|" * len(PIXELS)]
    for name, config in options("likelihood").items():
        cls = get_class(config["_target_"])
        assert issubclass(cls, Likelihood)
        lines.append(f"| `{name}` | " + " | ".join("✓" if p in cls.fits else "–" for p in PIXELS) + " |")
    return "\n".join(lines)


MEASUREMENTS = Path(__file__).resolve().parent.parent / "measurements"


def estimators() -> str:
    """One row per estimator: stated facts read from its class, its own parameters counted on the
    DisARM paper's model (MNIST, 200 latents), the families it pairs with asked of each latent's posterior,
    and the measured time per step (``docs/measurements/estimator_speed.json``, written by
    ``scripts/benchmark.py --estimators``)."""
    speed_file = MEASUREMENTS / "estimator_speed.json"
    speed = json.loads(speed_file.read_text()) if speed_file.is_file() else {"relative_to_pathwise": {}}
    probes = latent_families()
    sizes = {"input_shape": (1, 28, 28), "latent_features": 200}
    lines = [
        (
            "| estimator | unbiased | draws per image | cost evaluations per draw | own parameters | pairs with "
            "(latent) | time per step / pathwise |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for name, config in options("estimator").items():
        cls = get_class(config["_target_"])
        assert issubclass(cls, Estimator)
        settings = {k: v for k, v in config.items() if k != "_target_"}
        built = cls(**settings, **{size: sizes[size] for size in cls.sizes})
        own = sum(p.numel() for group in built.param_groups() for p in group["params"])
        draws = "objective's k (>= 2)" if cls.min_objective_samples > 1 else str(built.draws)
        families = ", ".join(
            f"`{n}`" for n, latent in probes.items() if cls.requires.met_by(latent.probe_posterior())
        )
        ratio = speed["relative_to_pathwise"].get(name)
        lines.append(
            f"| `{name}` | {'yes' if cls.unbiased else 'no'} | {draws} | {1 + cls.extra_cost_evaluations} | "
            f"{own or '–'} | {families} | {f'{ratio:.2f}' if ratio else '–'} |"
        )
    if speed.get("setup"):
        lines += ["", f"Time per step: {speed['setup']}, at commit {speed['commit']}."]
    return "\n".join(lines)


def readme() -> str:
    """README.md, the front page, with its links into ``docs/`` made relative to the site."""
    return (CONFIG_DIR.parent.parent / "README.md").read_text().replace("](docs/", "](")


GENERATORS = {
    "components": components,
    "settings": settings,
    "pairings": pairings,
    "estimators": estimators,
    "readme": readme,
}


def on_page_markdown(markdown: str, page, config, files) -> str:
    return MARKER.sub(lambda match: GENERATORS[match[1]](), markdown)
