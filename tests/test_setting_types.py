"""``vae_zoo.setting_types``: a component's settings against its constructor's annotations."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import pytest

from vae_zoo.errors import ConfigError
from vae_zoo.setting_types import check_settings, describe, fits


class Component:
    def __init__(
        self,
        in_features: int,
        dim: int = 8,
        rate: float = 0.5,
        cap: float = math.inf,
        hidden: list[int] | None = None,
        mode: Literal["min", "max"] = "min",
        where: Path | None = None,
        flag: bool = False,
    ) -> None: ...


class Extended(Component):
    def __init__(self, extra: str = "", **kwargs) -> None:
        super().__init__(**kwargs)


@pytest.mark.parametrize(
    ("settings", "line"),
    [
        ({"dim": "8"}, "c.dim='8' must be an integer (Component's dim)"),
        ({"dim": True}, "c.dim=True must be an integer"),
        ({"rate": math.nan}, "c.rate=nan must be a finite number"),
        ({"rate": math.inf}, "c.rate=inf must be a finite number"),
        ({"cap": math.nan}, "c.cap=nan must be a finite number"),
        ({"hidden": [1, "a"]}, "c.hidden=[1, 'a'] must be a list (an integer each) or null"),
        ({"hidden": {}}, "c.hidden={} must be a list"),
        ({"mode": "mid"}, "c.mode='mid' must be one of 'min', 'max'"),
        ({"where": 3}, "c.where=3 must be Path or null"),
        ({"flag": 1}, "c.flag=1 must be true or false"),
        (
            {"dimm": 3},
            "c.dimm is not a setting of Component (its settings: cap, dim, flag, hidden, in_features,",
        ),
    ],
)
def test_a_setting_of_the_wrong_type_or_name_is_one_line(settings, line):
    with pytest.raises(ConfigError) as refused:
        check_settings(Component, {"_target_": "x", **settings}, "c")
    assert line in str(refused.value) and "\n" not in str(refused.value)


def test_settings_of_their_types_pass_and_kwargs_reach_the_parents_parameters():
    good = {
        "dim": 3,
        "rate": 1,
        "cap": math.inf,
        "hidden": [4, 5],
        "mode": "max",
        "where": "/tmp",
        "flag": True,
    }
    check_settings(Component, good, "c")
    check_settings(Extended, {"extra": "x", **good}, "c")
    with pytest.raises(ConfigError, match=r"c.dim='3' must be an integer \(Extended's dim\)"):
        check_settings(Extended, {"dim": "3"}, "c")


def test_a_value_equal_to_the_default_passes_whatever_the_annotation():
    """``x: int = None`` (an annotation that forgot Optional) must not refuse the config's own default."""

    class Sloppy:
        def __init__(self, x: int = None) -> None: ...  # type: ignore[assignment]  # noqa: RUF013

    check_settings(Sloppy, {"x": None}, "s")


@pytest.mark.parametrize(
    ("hint", "value", "fit"),
    [
        (int | None, None, True),
        (float, 2, True),
        (tuple[int, str], [1, "a"], True),
        (tuple[int, str], [1, 2], False),
        (dict[str, int], {"a": 1}, True),
        (Component, {"_target_": "x"}, True),
        (Component, "x", False),
    ],
)
def test_fits(hint, value, fit):
    assert fits(value, hint) is fit


def test_describe():
    assert describe(int | None) == "an integer or null"
    assert describe(list[float]) == "a list (a finite number each)"
