"""Run ids and safe names derived from params."""

from __future__ import annotations

import pytest

from runmanager.naming import jsonable, run_id, safe_name

NASTY = ["../../x", "/etc", "a/b", "x" * 300, "héllo wörld ✓", "a\x00b", "..", "C:\\temp", "", " "]


def test_run_id_is_stable_and_ignores_key_order():
    assert run_id({"lr": 0.1, "units": 4}) == run_id({"units": 4, "lr": 0.1})
    assert run_id({"lr": 0.1}) != run_id({"lr": 0.2})
    assert run_id({"n": 1}) != run_id({"n": 1.0})
    assert len(run_id({"a": 1})) == 12


def test_jsonable_has_no_memory_addresses():
    class Thing:
        pass

    assert jsonable({"f": len, "c": Thing, "t": (1, 2)}) == {
        "f": "builtins.len", "c": f"{__name__}.test_jsonable_has_no_memory_addresses.<locals>.Thing", "t": [1, 2]}
    assert "0x" not in str(jsonable(Thing()))


@pytest.mark.parametrize("value", NASTY)
def test_safe_names_have_no_separators_dots_or_control_characters(value):
    name = safe_name(7, {"opt": value, "lr": 0.1})
    assert "/" not in name and "\\" not in name and "\x00" not in name and ".." not in name
    assert name.isascii() and name.isprintable() and " " not in name
    assert name.startswith("run-007-") and len(name) <= 130


def test_distinct_params_never_share_a_name():
    names = {safe_name(1, {"opt": value}) for value in NASTY}
    names |= {safe_name(1, {"opt": "x" * 300 + "y"}), safe_name(1, {"opt": "a_b"}), safe_name(1, {"opt": "a/b/"})}
    assert len(names) == len(NASTY) + 3
