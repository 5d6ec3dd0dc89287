"""The space file format and its checks (unit, milliseconds)."""

from __future__ import annotations

import pytest

from bot.errors import ConfigError
from bot.research.config import check_space
from bot.research.space import deep_merge, grid_space, overrides, parse_space


def test_quoted_and_nested_tables_mean_the_same_key() -> None:
    import tomllib

    quoted = parse_space(tomllib.loads('["signals.momentum.cooldown_s"]\nlow = 10\nhigh = 60\n'))
    nested = parse_space(tomllib.loads('[signals.momentum.cooldown_s]\nlow = 10\nhigh = 60\n'))
    assert quoted == nested
    p = quoted[0]
    assert p.key == "signals.momentum.cooldown_s" and (p.low, p.high) == (10, 60) and p.is_int


def test_kinds_float_log_step_choices() -> None:
    sp = parse_space({"a.x": {"low": 0.5, "high": 2.0, "log": True}, "a.y": {"low": 0, "high": 10, "step": 5},
                      "a.z": {"choices": [1000, 5000]}})
    d = {p.key: p for p in sp}
    assert not d["a.x"].is_int and d["a.x"].log
    assert d["a.y"].is_int and d["a.y"].step == 5
    assert grid_space([d["a.y"], d["a.z"]]) == {"a.y": [0, 5, 10], "a.z": [1000, 5000]}
    with pytest.raises(ConfigError, match="needs a step"):
        grid_space([d["a.x"]])


@pytest.mark.parametrize("table, msg", [
    ({"k.a": {"low": 5, "high": 1}}, "must be below"),
    ({"k.a": {"low": 1}}, "needs both low and high"),
    ({"k.a": {"low": 0, "high": 1, "log": True}}, "log = true needs low > 0"),
    ({"k.a": {"choices": []}}, "non-empty list"),
    ({"k.a": {"choices": [1], "low": 0}}, "cannot be combined"),
    ({"k.a": {"low": 0, "high": 1, "typo": 1}}, "unknown field"),
    ({}, "no parameter"),
])
def test_bad_space_is_one_clear_error(table: dict, msg: str) -> None:
    with pytest.raises(ConfigError, match=msg):
        parse_space(table)


def test_overrides_nest_dotted_keys_and_merge_onto_the_file() -> None:
    ov = overrides({"signals.momentum.cooldown_s": 30, "signals.momentum.bar_ms": 1000, "risk.max_cost_r": 0.2})
    assert ov == {"signals": {"momentum": {"cooldown_s": 30, "bar_ms": 1000}}, "risk": {"max_cost_r": 0.2}}
    base = {"signals": {"momentum": {"cooldown_s": 45, "swing_bars": 4}}}
    merged = deep_merge(base, ov)
    assert merged["signals"]["momentum"] == {"cooldown_s": 30, "swing_bars": 4, "bar_ms": 1000}
    assert base["signals"]["momentum"]["cooldown_s"] == 45  # the base is not changed


def test_keys_are_checked_by_the_settings_loader() -> None:
    check_space(parse_space({"signals.momentum.cooldown_s": {"low": 10, "high": 60}}), {})
    with pytest.raises(ConfigError, match=r'space \["signals.momentum.cooldwn_s"\]'):
        check_space(parse_space({"signals.momentum.cooldwn_s": {"low": 10, "high": 60}}), {})
    # out of the key's own range (cooldown_s >= 0): the loader's bound, not a second copy of it
    with pytest.raises(ConfigError, match="cooldown_s"):
        check_space(parse_space({"signals.momentum.cooldown_s": {"low": -5, "high": 60}}), {})
