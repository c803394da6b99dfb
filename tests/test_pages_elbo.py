"""Page tests of lesson 4 (the bound) under streamlit's AppTest: defaults, extremes of every widget,
and the numbers shown checked against an independent run of the lesson's functions."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lessons import elbo_lesson as L
from tests import helpers

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
PAGE = "views/elbo.py"
TIMEOUT = 300  # the exact bound over every step, the bound-vs-T curve and 2,000 estimates per run

pytestmark = pytest.mark.slow


def open_page(**params) -> AppTest:
    return helpers.open_page(PAGE, timeout=TIMEOUT, **params)


def metric(at: AppTest, label_start: str) -> str:
    for m in at.metric:
        if m.label.startswith(label_start):
            return m.value
    raise AssertionError(f"no metric {label_start!r}; have {[m.label for m in at.metric]}")


def number(text: str) -> float:
    return float(text.split()[0].replace("×", ""))


def test_defaults_show_a_bound_above_the_true_nll_and_terms_that_sum():
    at = open_page()
    bound, nll = number(metric(at, "bound L")), number(metric(at, "true NLL"))
    assert bound > nll  # the bound is an upper bound (1,000 points, T = 1000: gap ~1 nat with beta-tilde)
    assert number(metric(at, "gap")) == pytest.approx(bound - nll, abs=2e-3)
    assert number(metric(at, "bits/dim")) == pytest.approx(bound / (2 * math.log(2)), abs=2e-3)
    table = at.dataframe[0].value
    assert table["nats"].iloc[:3].sum() == pytest.approx(table["nats"].iloc[3], rel=1e-9)
    assert table["nats"].iloc[3] == pytest.approx(bound, abs=1e-3)
    naive, rearr = number(metric(at, "std, naive")), number(metric(at, "std, rearranged"))
    assert naive > rearr
    assert number(metric(at, "ratio")) == pytest.approx(naive / rearr, rel=2e-3)
    assert len(at.get("plotly_chart")) >= 5
    assert not at.error


def test_variance_beta_tightens_the_bound():
    at = open_page(T=200)
    tilde = number(metric(at, "bound L"))
    at.radio(key="elbo_variance").set_value("beta").run()
    assert not at.exception
    assert number(metric(at, "bound L")) < tilde  # smooth data: the true reverse variance is near beta_t


@pytest.mark.parametrize(
    "params",
    [
        dict(T=1),
        dict(T=2, schedule="cosine"),
        dict(T=3, beta_1=0.999, beta_T=0.999),
        dict(T=50, data="mnist"),
        dict(T=20, point=999, t_est=20),
        dict(T=20, point=-5, t_est="x"),
    ],
)
def test_extremes_never_crash(params):
    at = open_page(**params)
    assert not at.error
    assert math.isfinite(number(metric(at, "bound L")))


def test_sliders_at_their_ends():
    at = open_page(T=30)
    at.slider(key="elbo_point").set_value(999).run()
    at.slider(key="elbo_t_est").set_value(30).run()
    assert not at.exception
    # at t = T the rearranged estimate is L_T + T L_{T-1}: almost no spread left
    assert number(metric(at, "std, rearranged")) < number(metric(at, "std, naive"))


def test_the_numbers_shown_are_the_lesson_s_numbers():
    import torch

    from lessons.settings import FrameState, build_schedule
    from toy_models.gmm import AnalyticModel, default_gmm

    at = open_page(T=40, seed=3)
    state = FrameState(T=40, seed=3)
    s, gmm = build_schedule(state), default_gmm()
    x0 = gmm.sample(1000, generator=torch.Generator().manual_seed(3))[0]
    r = L.bound_terms(s, AnalyticModel(gmm, s), x0, variance="beta_tilde", seed=3)
    assert number(metric(at, "bound L")) == pytest.approx(r.total, abs=1e-3)


def test_ode_toggle_shows_the_ode_gap():
    at = open_page(T=20)
    at.toggle(key="elbo_ode").set_value(True).run()
    assert not at.exception
    shown = [m.value for m in at.markdown if "ODE NLL − true NLL" in m.value]
    assert shown, "the ODE result is not shown"
    gap_ode = float(shown[0].split("**")[1].split()[0])
    assert math.isfinite(gap_ode)
    gap_bound = number(metric(at, "gap"))
    assert ("lies below the bound" in shown[0]) == (gap_ode < gap_bound)  # the observation follows the numbers
    assert "exact likelihood" not in shown[0]


def test_learned_model_toggle_when_shipped():
    from toy_models.checkpoints import CheckpointError, load_checkpoint

    try:
        load_checkpoint("moons")
    except CheckpointError as e:
        pytest.skip(f"weights/moons not shipped: {e}")
    at = open_page(T=20, data="moons")
    at.toggle(key="elbo_learned_go").set_value(True).run()
    assert not at.exception
    assert any("Learned model 'moons'" in c.value for c in at.caption)


def test_mnist_bound_says_what_limits_it():
    """The MNIST bound's L_0 floor (a denoiser that knows x_0) as the page shows it, recomputed on the same
    held-out digits; the floor sits below the shipped model's L_0."""
    from course import mnist
    from toy_models.checkpoints import CheckpointError, load_checkpoint

    try:
        ck = load_checkpoint("mnist")
    except CheckpointError as e:
        pytest.skip(f"weights/mnist not shipped: {e}")
    at = helpers.open_page(
        script=str(ROOT / PAGE), timeout=TIMEOUT, T=20, mnist_n=8
    )  # run alone: AppTest loses a button's
    at.button(key="elbo_mnist_go").click().run()  # click across app.py's switch_page (the score tests do the same)
    assert not at.exception
    shown = [m.value for m in at.markdown if "What limits this bound" in m.value]
    assert shown, "the limits of the MNIST bound are not shown"
    floor_shown = float(shown[0].split("L_0 = ")[1].split()[0])
    floor = L.l0_floor(ck.schedule, mnist().held_out(8)[0], "beta_tilde")
    assert floor_shown == pytest.approx(floor, abs=0.06)
    l0_shown = [m.value for m in at.markdown if "Bound on 8 held-out digits" in m.value][0]
    assert float(l0_shown.split("L_0 ")[1].split()[0]) > floor  # the network pays more than the floor


def test_try_this_T10_as_the_page_shows_it():
    """The first prompt at its setting: the page's L_T and gap at T = 10 against the default T = 1000."""
    at10, at1000 = open_page(T=10), open_page()
    table10 = at10.dataframe[0].value
    assert table10["nats"].iloc[0] < 1e-3  # L_T stays tiny
    assert number(metric(at10, "gap")) > 3 * number(metric(at1000, "gap"))


def test_equations_are_full_width_and_the_variance_sits_in_the_advanced_section():
    at = open_page(T=20)
    assert len(at.latex) == len(L.BOUND_LINES) + 1 + len(L.EQ_PARAMS)
    assert at.radio(key="elbo_variance").value == "beta_tilde"
    assert any(e.label.startswith("Advanced") for e in at.expander)
