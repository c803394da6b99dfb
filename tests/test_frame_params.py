"""Unit tests of the page-level URL parameter helpers of lessons.settings (no streamlit): every widget's
value survives the round trip value -> URL text -> value, and a hand-edited value is repaired with a
notice that names the parameter."""

from __future__ import annotations

import pytest

from lessons import settings

STEP_SIZES = [1e-6, 3e-6, 1e-5, 2e-5, 5e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2]  # the score page's select_slider


# --- floats ------------------------------------------------------------------------------------------
def test_float_valid_values_round_trip_without_notice():
    for v in (-3.0, -0.5, 0.0, 0.1, 1.5, 3.0):
        notes = []
        assert settings.parse_float_param(
            "x1", settings.format_param(v), -3.0, 3.0, 0.0, notes, step=0.1
        ) == pytest.approx(v)
        assert notes == []
    notes = []
    assert settings.parse_float_param("x1", None, -3.0, 3.0, 0.25, notes) == 0.25 and notes == []  # absent: default


@pytest.mark.parametrize(
    "raw,expected,word",
    [
        ("7", 3.0, "outside"),  # out of range: clamped
        ("-1e9", -3.0, "outside"),
        ("abc", 0.5, "not a valid number"),  # garbage: the default
        ("nan", 0.5, "not a valid number"),
        ("inf", 0.5, "not a valid number"),
        ("0.53", 0.5, "grid"),  # off the slider's step grid: snapped
        ("1.26", 1.3, "grid"),
    ],
)
def test_float_repairs_come_with_a_notice(raw, expected, word):
    notes = []
    assert settings.parse_float_param("x1", raw, -3.0, 3.0, 0.5, notes, step=0.1) == pytest.approx(expected)
    assert len(notes) == 1 and "x1" in notes[0] and word in notes[0], notes


def test_float_snapping_gives_grid_values_exactly():
    notes = []
    v = settings.parse_float_param("level", "0.3", 0.05, 1.0, 0.5, notes, step=0.05)
    assert v == 0.3 and notes == []  # not 0.30000000000000004
    assert settings.format_param(v) == "0.3"


# --- choices -----------------------------------------------------------------------------------------
def test_choice_of_strings_ints_and_floats():
    notes = []
    assert (
        settings.parse_choice_param("right", "sigmoid", ("linear", "cosine", "sigmoid"), "cosine", notes) == "sigmoid"
    )
    assert settings.parse_choice_param("y", "2", [0, 1, 2, "∅"], 0, notes) == 2
    assert settings.parse_choice_param("y", "∅", [0, 1, 2, "∅"], 0, notes) == "∅"
    assert settings.parse_choice_param("eps", settings.format_param(2e-5), STEP_SIZES, 1e-4, notes) == 2e-5
    assert settings.parse_choice_param("eps", "2e-5", STEP_SIZES, 1e-4, notes) == 2e-5  # written another way
    assert settings.parse_choice_param("particles", "2000.0", (500, 1000, 2000), 1000, notes) == 2000
    assert notes == []
    for c in STEP_SIZES + [0, 5, "∅", "exact (analytic mixture)"]:  # every choice survives the round trip
        assert (
            settings.parse_choice_param(
                "c", settings.format_param(c), STEP_SIZES + [0, 5, "∅", "exact (analytic mixture)"], None, notes
            )
            == c
        )


@pytest.mark.parametrize("raw", ["quadratic", "", "7e-5", "Linear"])
def test_unknown_choice_resets_with_notice(raw):
    notes = []
    out = settings.parse_choice_param(
        "left",
        raw,
        ("linear", "cosine", "sigmoid") if raw != "7e-5" else STEP_SIZES,
        "linear" if raw != "7e-5" else 2e-5,
        notes,
    )
    assert out == ("linear" if raw != "7e-5" else 2e-5)
    assert len(notes) == 1 and "left" in notes[0] and "valid:" in notes[0], notes


# --- booleans ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw,expected",
    [("1", True), ("0", False), ("true", True), ("False", False), ("on", True), ("no", False), (None, True)],
)
def test_bool_words(raw, expected):
    notes = []
    assert settings.parse_bool_param("ddpm", raw, True, notes) is expected and notes == []


@pytest.mark.parametrize("raw", ["2", "maybe", ""])
def test_bool_garbage_resets_with_notice(raw):
    notes = []
    assert settings.parse_bool_param("present", raw, False, notes) is False
    assert len(notes) == 1 and "present" in notes[0]


# --- multiselect ---------------------------------------------------------------------------------------
def test_multi_round_trip_and_empty():
    notes = []
    opts = list(range(20))
    assert settings.parse_multi_param("follow", settings.format_param([4, 0, 19]), opts, [0], notes) == [4, 0, 19]
    assert settings.parse_multi_param("follow", "", opts, [0, 1], notes) == []  # an empty selection is a selection
    assert settings.parse_multi_param("follow", None, opts, [0, 1], notes) == [0, 1]
    assert notes == []


def test_multi_repairs():
    notes = []
    out = settings.parse_multi_param("follow", "3,x,99,3,5", list(range(20)), [0], notes)
    assert out == [3, 5]  # unknown items and the duplicate dropped
    assert len(notes) == 1 and "'x'" in notes[0] and "'99'" in notes[0]
    notes = []
    out = settings.parse_multi_param(
        "follow", ",".join(map(str, range(12))), list(range(20)), [0], notes, max_selections=8
    )
    assert out == list(range(8)) and len(notes) == 1 and "at most 8" in notes[0]


# --- ints (the slide of presenter mode uses this one) -------------------------------------------------------
@pytest.mark.parametrize(
    "raw,expected,ok", [("3", 3, True), ("0", 1, False), ("2.5", 1, False), ("x", 1, False), ("1e9", 10**6, False)]
)
def test_slide_numbers(raw, expected, ok):
    notes = []
    assert settings.parse_int_param("slide", raw, 1, 10**6, 1, notes) == expected
    assert (notes == []) == ok and all("slide" in n for n in notes)


@pytest.mark.parametrize(
    "raw,expected,ok",
    [
        ("40", 40, True),
        ("43", 40, False),
        ("47", 50, False),
        ("10", 10, True),
        ("999", 200, False),
        ("3", 10, False),
        ("x", 50, False),
    ],
)
def test_int_parameters_snap_to_the_slider_step(raw, expected, ok):
    """The inpainting page's sampler steps: a slider 10..200 in steps of 10, default 50."""
    notes = []
    assert settings.parse_int_param("steps_2d", raw, 10, 200, 50, notes, step=10) == expected
    assert (notes == []) == ok and all("steps_2d" in n for n in notes)


def test_the_snapped_int_stays_on_a_grid_that_ends_below_hi():
    notes = []  # grid 5, 9, 13, 17 (hi = 19 is not on it): 19 goes to 17, not past the slider's last stop
    assert settings.parse_int_param("k", "19", 5, 19, 9, notes, step=4) == 17 and "using 17" in notes[0]


def test_format_param():
    assert settings.format_param(True) == "1" and settings.format_param(False) == "0"
    assert (
        settings.format_param(0.1 + 0.2) == "0.3"
        and settings.format_param(1e-5) == "1e-05"
        and settings.format_param(3.0) == "3"
    )
    assert (
        settings.format_param([1, 2]) == "1,2" and settings.format_param(7) == "7" and settings.format_param("∅") == "∅"
    )
