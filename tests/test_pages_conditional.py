"""AppTest of the conditional-generation page: defaults and the extremes of every widget, with the
numbers the page shows checked (scale 0 ignores the label, the top scale puts everything in the class)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lessons.figures import MAX_PAYLOAD_BYTES
from tests.helpers import open_page

PAGE = str(Path(__file__).resolve().parents[1] / "views" / "conditional.py")
TIMEOUT = 180

pytestmark = pytest.mark.slow


def _check_figures(at):
    figs = at.get("plotly_chart")
    assert figs
    for el in figs:
        spec = el.proto.spec
        assert len(spec.encode()) < MAX_PAYLOAD_BYTES
        assert "NaN" not in spec and "Infinity" not in spec


def _share(at, prefix: str) -> float:
    """The 'share in the class' of the caption that starts with prefix (e.g. 'w = 0')."""
    for c in at.caption:
        if c.value.startswith(prefix + ":"):
            return float(re.search(r"\*\*(\d+)%\*\*", c.value).group(1)) / 100
    raise AssertionError(f"no caption for {prefix}: {[c.value[:40] for c in at.caption]}")


@pytest.fixture(scope="module")
def at():
    return open_page(script=PAGE, timeout=TIMEOUT)


def test_defaults(at):
    _check_figures(at)
    assert _share(at, "y = 0") > 0.9  # the label input lands in the class
    sweep = next(c.value for c in at.caption if "200 samples per scale" in c.value)
    sweep = sweep[sweep.index("200 samples per scale") :]
    lo, hi = (int(v) for v in re.findall(r"(\d+)%", sweep)[:2])
    assert lo < 60 and hi >= 95  # w = 0 ignores the label; w = 10 is all in the class
    assert at.header[0].value.startswith("1")


def test_scale_extremes(at):
    at.slider(key="cond_w").set_value(0.0)
    at.slider(key="cond_s").set_value(0.0)
    at.slider(key="cond_steps").set_value(5)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert _share(at, "w = 0") < 0.6 and _share(at, "γ = 0") < 0.6  # unguided: the label is ignored
    at.slider(key="cond_w").set_value(10.0)
    at.slider(key="cond_s").set_value(20.0)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert _share(at, "w = 10") > 0.95
    _check_figures(at)


def _moon_shares(at) -> dict[int, float]:
    cap = next(c.value for c in at.caption if "Nearest data point" in c.value)
    return {int(m): int(v) / 100 for m, v in re.findall(r"moon (\d): \*\*(\d+)%\*\*", cap)}


def test_two_moons_label_input(at):
    """The shipped label-conditional two-moons model: the asked-for moon, the other one, and both for ∅."""
    at.slider(key="cond_steps").set_value(40)  # the default (an earlier test may have left 5)
    at.radio(key="cond_moon").set_value(0)
    at.run()
    assert _moon_shares(at)[0] > 0.9  # default y = 0: nearly every sample on the upper moon
    at.radio(key="cond_moon").set_value(1)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert _moon_shares(at)[1] > 0.9
    at.radio(key="cond_moon").set_value("∅")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    both = _moon_shares(at)
    assert 0.3 < both[0] < 0.7 and abs(both[0] + both[1] - 1) < 0.02  # the null label samples both moons


def test_null_label_and_t_extremes(at):
    at.selectbox(key="cond_label").set_value("∅")
    at.slider(key="cond_t").set_value(0)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    at.slider(key="cond_t").set_value(at.slider(key="cond_t").max)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    _check_figures(at)


def test_learned_source_falls_back_or_runs(at):
    at.radio(key="cond_source").set_value("learned (weights/gmm)")
    at.selectbox(key="cond_label").set_value(0)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    from toy_models.checkpoints import list_shipped

    if "gmm" not in list_shipped():
        assert any("unavailable" in e.value for e in at.error)
    else:  # the page names the model it uses, and the label still lands in the class
        assert any(c.value.startswith("Learned: recipe `gmm`") for c in at.caption)
        assert _share(at, "y = 0") > 0.9


def test_mnist_section_runs_with_random_weights(random_mnist_weights):
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(c.value.startswith("The independent judge reads") for c in at.caption)
    at.slider(key="cond_w_mnist").set_value(0.0)
    at.slider(key="cond_s_mnist").set_value(20.0)
    at.run()
    assert not at.exception, [e.value for e in at.exception]


@pytest.mark.parametrize("T", ["1", "2000"])
def test_extreme_T_from_the_url(T):
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.query_params["T"] = T
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    if T == "1":  # clamped to T_MIN, below the page's 5-step minimum
        from lessons.settings import T_MIN

        assert any(c.value.startswith(f"Only T = {T_MIN} steps exist") for c in at.caption)
