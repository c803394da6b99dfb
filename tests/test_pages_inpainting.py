"""AppTest of the inpainting page: defaults and extremes; the known coordinate is kept exactly and
resampling brings the replacement samples closer to the exact conditional (numbers read off the page)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lessons.figures import MAX_PAYLOAD_BYTES
from tests.helpers import open_page

PAGE = str(Path(__file__).resolve().parents[1] / "views" / "inpainting.py")
TIMEOUT = 180

pytestmark = pytest.mark.slow


def _w1(at) -> float:
    c = next(c.value for c in at.caption if "Wasserstein-1" in c.value)
    assert re.search(r"max \|x₁ − [-\d.]+\| = 0\b", c), c  # the known coordinate is exact
    return float(re.search(r"\*\*([\d.]+)\*\*", c).group(1))


@pytest.fixture(scope="module")
def at():
    return open_page(script=PAGE, timeout=TIMEOUT)


def test_defaults_and_resampling(at):
    for el in at.get("plotly_chart"):
        assert len(el.proto.spec.encode()) < MAX_PAYLOAD_BYTES and "NaN" not in el.proto.spec
    w1 = _w1(at)
    at.slider(key="inp_resample_2d").set_value(10).run()
    assert not at.exception, [e.value for e in at.exception]
    assert _w1(at) < w1


def test_extremes(at):
    for v in (-2.5, 2.5):
        at.slider(key="inp_value").set_value(v)
        at.slider(key="inp_steps_2d").set_value(10)
        at.slider(key="inp_resample_2d").set_value(1)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        _w1(at)


def _mnist_ready():
    from toy_models.checkpoints import list_shipped

    have = set(list_shipped())
    return "mnist" in have or "mnist-inpaint" in have


@pytest.mark.parametrize("preset", ["custom", "left half", "scattered pixels"])
def test_masks_empty_full_and_presets(preset):
    if not _mnist_ready():
        pytest.skip("weights/mnist and weights/mnist-inpaint are not available")
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.run()
    at.selectbox(key="inp_mask").set_value(preset)
    at.slider(key="inp_steps").set_value(5)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    if preset == "custom":  # default board: first 3 columns known; then all known (full mask)
        known = next(m for m in at.metric if m.label == "known pixels")
        assert known.value.startswith("336 ")


def _known_rmse(at, which: int) -> float:
    caps = [c.value for c in at.caption if c.value.startswith("Known-pixel RMS error")]
    return float(re.search(r"\*\*([\d.]+)\*\*", caps[which]).group(1))


def test_mnist_sections_with_random_weights(random_mnist_weights):
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    at.slider(key="inp_steps").set_value(5)
    at.run()
    assert _known_rmse(at, 0) == 0.0  # replacement keeps the known pixels exactly
    at.selectbox(key="inp_mask").set_value("custom").run()
    assert not at.exception, [e.value for e in at.exception]
    assert next(m for m in at.metric if m.label == "known pixels").value.startswith("336 ")
    at.slider(key="inp_resample").set_value(2)
    at.slider(key="inp_step_replacement").set_value(0)
    at.run()
    assert not at.exception, [e.value for e in at.exception]


def test_the_smallest_T_from_the_url():
    from lessons.settings import T_MIN

    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.query_params["T"] = "1"  # clamped to T_MIN
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(c.value.startswith(f"Only T = {T_MIN} steps exist") for c in at.caption)
    _w1(at)  # the known coordinate is still exact


def test_a_step_count_off_the_slider_grid_in_the_url_is_snapped_with_a_notice():
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.query_params["steps_2d"] = "43"  # the slider goes 10, 20, ..., 200
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.slider(key="inp_steps_2d").value == 40
    assert any("steps_2d=43" in w.value and "using 40" in w.value for w in at.warning), [w.value for w in at.warning]
