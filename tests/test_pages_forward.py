"""Page tests under streamlit's AppTest: home, forward noising and the schedule lab, at defaults,
at extremes, with every data set, and with hand-edited URLs. Values shown are checked against
make_schedule; every plotly figure is checked for NaN/inf and for its payload size."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from lessons import settings
from lessons.figures import MAX_PAYLOAD_BYTES
from tests import helpers
from toy_models.schedules import make_schedule

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
TIMEOUT = 60  # AppTest's default 3 s is too short for a torch + plotly page
PAGES = {"home": None, "forward": "views/forward.py", "schedule_lab": "views/schedule_lab.py"}

pytestmark = pytest.mark.slow


def open_page(page: str, **params) -> AppTest:
    """A fresh session on `page` (a key of PAGES) with URL query parameters `params`."""
    return helpers.open_page(PAGES[page], timeout=TIMEOUT, **params)


def _arrays(obj):
    """Every numeric array in a plotly JSON spec (typed base64 arrays decoded)."""
    if isinstance(obj, dict):
        if "bdata" in obj and "dtype" in obj:
            yield np.frombuffer(base64.b64decode(obj["bdata"]), dtype=np.dtype(obj["dtype"]))
            return
        for v in obj.values():
            yield from _arrays(v)
    elif isinstance(obj, list):
        if obj and all(isinstance(v, (int, float)) or v is None for v in obj):
            yield np.array([np.nan if v is None else v for v in obj], dtype=float)
        else:
            for v in obj:
                yield from _arrays(v)


def check_figures(at: AppTest) -> int:
    """Every plotly figure: finite data, payload under the limit. Returns the number of figures."""
    figs = at.get("plotly_chart")
    for el in figs:
        spec = el.proto.spec
        assert len(spec.encode()) < MAX_PAYLOAD_BYTES, f"figure payload {len(spec)} bytes"
        assert "NaN" not in spec and "Infinity" not in spec
        fig = json.loads(spec)
        for trace in fig.get("data", []) + [d for fr in fig.get("frames", []) for d in fr.get("data", [])]:
            for key in ("x", "y", "z"):
                if key in trace:
                    for arr in _arrays(trace[key]):
                        assert np.isfinite(arr).all(), f"non-finite {key} in trace {trace.get('name')}"
    return len(figs)


def shared_sidebar_present(at: AppTest) -> bool:
    return any(sb.key == "frame_data" for sb in at.sidebar.selectbox)


def caption_abar_T(at: AppTest) -> float:
    for c in at.caption:
        if "ᾱ_T = " in c.value:
            return float(c.value.split("ᾱ_T = ")[1].split()[0].rstrip(".;"))
    raise AssertionError("no caption shows abar_T")


# --- defaults --------------------------------------------------------------------------------------
@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_at_defaults(page):
    at = open_page(page)
    assert shared_sidebar_present(at)
    assert check_figures(at) >= 2
    assert at.query_params["schedule"] == ["linear"] or at.query_params["schedule"] == "linear"


def test_forward_values_match_make_schedule():
    at = open_page("forward", T=400, schedule="cosine", s=0.01, t=123)
    s = make_schedule("cosine", 400, s=0.01)
    assert at.slider(key="forward_t").value == 123
    assert float(at.metric[0].value) == pytest.approx(float(s.alphas_cumprod[123]), rel=1e-5)
    assert float(at.metric[1].value) == pytest.approx(math.sqrt(float(s.alphas_cumprod[123])), abs=1e-4)
    assert caption_abar_T(at) == pytest.approx(float(s.alphas_cumprod[400]), rel=1e-5)
    # the chain-vs-closed table: both routes near the theory (1,000 copies)
    df = at.table[0].value
    theory = df[df["route"] == "theory (eq. 4)"].iloc[0]
    for _, row in df.iterrows():
        assert abs(row["var x₁"] / theory["var x₁"] - 1) < 4 * math.sqrt(2 / 1000)


def test_schedule_lab_values_match_make_schedule():
    at = open_page("schedule_lab", T=300, schedule="sigmoid", beta_1=0.001, beta_T=0.05, t=77)
    s = make_schedule("sigmoid", 300, beta_start=0.001 * 1000 / 300, beta_end=0.05 * 1000 / 300)  # stated for 1000
    a = float(s.alphas_cumprod[77])
    values = [float(m.value) for m in at.metric]
    assert values[0] == pytest.approx(a, rel=1e-5)
    assert values[1] == pytest.approx(math.sqrt(a), abs=1e-4)
    assert values[2] == pytest.approx(math.sqrt(1 - a), abs=1e-4)
    assert values[3] == pytest.approx(math.log(a / (1 - a)), abs=1e-3)
    assert caption_abar_T(at) == pytest.approx(float(s.alphas_cumprod[300]), rel=1e-5)


def _figure(at: AppTest, title_start: str) -> dict:
    """The page's plotly figure (JSON) whose title starts with title_start."""
    for el in at.get("plotly_chart"):
        fig = json.loads(el.proto.spec)
        if fig["layout"]["title"]["text"].startswith(title_start):
            return fig
    raise AssertionError(f"no figure titled {title_start!r}")


def _values(trace_part) -> np.ndarray:
    return np.concatenate(list(_arrays(trace_part)))


def test_forward_names_the_marginal_kl_and_the_prior_term_apart():
    """The page quotes KL(q(x_T) || N(0, I)) and L_T = E KL(q(x_T | x_0) || N(0, I)) as two numbers, each from its own
    computation, and draws both curves; L_T is the larger (by I(x_0; x_T))."""
    from lessons import forward as LF
    from toy_models.gmm import default_gmm

    at = open_page("forward", T=200, t=50)
    g, s = default_gmm(), settings.build_schedule(settings.FrameState(T=200))
    l_T, kl_T = LF.prior_term_curve(g, s, [200])[0], LF.gmm_kl_curve(g, s, [200])[0]
    text = next(m.value for m in at.markdown if "L_T = " in m.value)
    assert f"{l_T:.3g} nats" in text and f"KL(q(x_T) ‖ N(0, I)) = {kl_T:.3g} nats" in text
    assert f"KL(q(x_{{50}}) ‖ N(0, I)) = {LF.gmm_kl_curve(g, s, [50])[0]:.4g}" in text
    assert l_T > kl_T
    fig = _figure(at, "How far q(x_t)")
    solid, dashed = fig["data"]
    assert dashed["line"]["dash"] == "dash" and "L_T" in dashed["name"]
    assert _values(dashed["x"])[-1] == 200 and _values(dashed["y"])[-1] == pytest.approx(l_T, rel=1e-6)
    assert np.all(_values(dashed["y"]) >= np.interp(_values(dashed["x"]), _values(solid["x"]), _values(solid["y"])))


def test_forward_try_this_opens_its_settings():
    """Each setting the forward prompt names, opened on the page, shows the number the prompt quotes."""
    from lessons import forward as LF
    from toy_models.gmm import default_gmm

    n = LF.try_this_numbers(default_gmm())
    at = open_page("forward", T=LF.TRY_T)
    assert any(m.value == LF.try_this(default_gmm()) for m in at.markdown)
    assert caption_abar_T(at) == pytest.approx(n["abar_T"], rel=1e-5)
    ts = _values(_figure(at, "Markov-chain paths")["data"][2]["x"])  # the chains: every one of the T steps
    assert list(ts) == list(range(LF.TRY_T + 1))
    for beta, kl in ((LF.TRY_CONSTANT_BETA, n["kl_constant"]), (None, n["kl_linear"])):
        params = dict(beta_1=beta, beta_T=beta) if beta else {}
        at = open_page("forward", T=1000, t=n["t"], **params)
        text = next(m.value for m in at.markdown if "L_T = " in m.value)
        assert f"KL(q(x_{{{n['t']}}}) ‖ N(0, I)) = {kl:.4g} nats" in text, text
    assert caption_abar_T(at) == pytest.approx(n["abar_T_linear"], rel=1e-5)


def test_schedule_lab_try_this_opens_its_settings():
    """The lab's prompt at its two settings (the defaults, t = T/2; then T = 100, t = 50): the page shows the
    prompt, and its caption's abar_t for linear and cosine are the numbers the prompt quotes."""
    from lessons import schedule_lab as LS

    n = LS.try_this_numbers()
    for T, params in ((settings.DEFAULT.T, {}), (LS.TRY_T, dict(T=LS.TRY_T, t=LS.TRY_T // 2))):
        at = open_page("schedule_lab", **params)
        assert at.slider(key="lab_t").value == T // 2
        assert any(m.value == LS.try_this() for m in at.markdown)
        assert any(m.value == LS.narrative(T) for m in at.markdown)
        caption = next(c.value for c in at.caption if c.value.startswith("Your schedule"))
        for name in ("linear", "cosine"):
            assert f"{name}: ᾱ_t = {n[(name, T)]['abar']:.4g}" in caption, (name, caption)
        assert float(at.metric[1].value) == pytest.approx(n[("linear", T)]["signal"], abs=1e-4)  # the sidebar's linear
        digits = _figure(at, "The same digit and the same noise")
        titles = [a["text"] for a in digits["layout"]["annotations"]]
        assert titles[:2] == [
            f"linear: sqrt(ᾱ_t) = {n[('linear', T)]['signal']:.3f}",
            f"cosine: sqrt(ᾱ_t) = {n[('cosine', T)]['signal']:.3f}",
        ]


# --- extremes ---------------------------------------------------------------------------------------
EXTREMES = [
    dict(T=settings.T_MIN),
    dict(T=settings.T_MAX, schedule="sigmoid", beta_1=1e-5, beta_T=0.999),
    dict(T=50, beta_1=0.01, beta_T=0.01),  # beta_1 = beta_T: a constant schedule
    dict(T=200, beta_1=0.5, beta_T=0.999),  # beta_T near 1: abar_T underflows to 0
    dict(T=settings.T_MIN, schedule="cosine", s=0),
    dict(T=settings.T_MAX),
    dict(T=20, beta_1=0.2, beta_T=0.001),  # decreasing betas are allowed
]
FORWARD_EXTREMES = EXTREMES[:4]  # the forward page is the costly one: its four hardest cases


def _ids(p):
    return "-".join(f"{k}={v}" for k, v in p.items())


@pytest.mark.parametrize(
    "page,params",
    [("forward", p) for p in FORWARD_EXTREMES] + [("schedule_lab", p) for p in EXTREMES],
    ids=lambda x: x if isinstance(x, str) else _ids(x),
)
def test_pages_at_extremes(page, params):
    at = open_page(page, **params)
    check_figures(at)
    state, notes = settings.parse_params({k: str(v) for k, v in params.items()})
    assert notes == [] and not at.warning
    s = settings.build_schedule(state)
    assert caption_abar_T(at) == pytest.approx(float(s.alphas_cumprod[s.T]), rel=1e-5, abs=1e-300)
    t = at.slider(key="forward_t" if page == "forward" else "lab_t").value
    assert 0 <= t <= s.T
    assert float(at.metric[0].value) == pytest.approx(float(s.alphas_cumprod[t]), rel=1e-5, abs=1e-300)


def test_forward_with_each_dataset():
    """One session, the data selectbox moved through every choice."""
    at = open_page("forward", T=50)
    for data in settings.DATA_CHOICES:
        at.sidebar.selectbox(key="frame_data").set_value(data).run()
        assert not at.exception, data
        shown = data if data in settings.DATA_2D else "gmm"
        assert any(h.value == f"x_t on 2D data ({shown})" for h in at.header), data
        assert at.query_params["data"] in (data, [data])
        check_figures(at)


@pytest.mark.parametrize("data", ["gmm", "mnist"])
def test_home_with_other_data(data):
    at = open_page("home", data=data, T=50)
    assert check_figures(at) >= 2
    coming = [les for les in settings.LESSONS if not (les.page and (ROOT / les.page).exists())]
    assert sum("coming" in m.value for m in at.markdown) == len(coming)


# --- widgets ----------------------------------------------------------------------------------------
def test_changing_T_clamps_t_and_updates_the_url():
    at = open_page("forward", T=1000, t=900, t_chain=800, t_digit=700)
    assert [at.slider(key=k).value for k in ("forward_t", "forward_t_chain", "forward_t_digit")] == [900, 800, 700]
    at.sidebar.number_input(key="frame_T").set_value(10).run()
    assert not at.exception
    assert [at.slider(key=k).value for k in ("forward_t", "forward_t_chain", "forward_t_digit")] == [10, 10, 10]
    assert at.query_params["T"] in ("10", ["10"]) and at.query_params["t"] in ("10", ["10"])
    at.sidebar.selectbox(key="frame_schedule").set_value("cosine").run()
    assert not at.exception
    assert any(n.key == "frame_s" for n in at.sidebar.number_input)
    assert "beta_1" not in at.query_params
    s = make_schedule("cosine", 10)
    assert float(at.metric[0].value) == pytest.approx(float(s.alphas_cumprod[10]), rel=1e-5, abs=1e-9)
    check_figures(at)


def test_moving_t_changes_the_figure():
    at = open_page("schedule_lab", T=100, t=10)
    before = at.get("plotly_chart")[0].proto.spec
    at.slider(key="lab_t").set_value(90).run()
    assert not at.exception
    assert at.get("plotly_chart")[0].proto.spec != before
    s = make_schedule("linear", 100, beta_start=1e-3, beta_end=0.2)  # the defaults, stated for T = 1000, times 10
    assert float(at.metric[0].value) == pytest.approx(float(s.alphas_cumprod[90]), rel=1e-5)


# --- hand-edited URLs -----------------------------------------------------------------------------------
# (query parameters, the names a warning must mention)
BAD_URLS = [
    (
        dict(data="imagenet", schedule="quadratic", T="abc", beta_1="nan", beta_T="2", seed="x"),
        ["data", "schedule", "T", "beta_1", "beta_T", "seed"],
    ),
    (dict(T="-5", schedule="cosine", s="-1", t="99999", digit="12", which="-1", point="1e6"), ["T", "s", "t", "digit"]),
    (dict(T="1e9", t="half", seed="-3"), ["T", "t", "seed"]),
]


@pytest.mark.parametrize("page", ["forward", "schedule_lab"])
@pytest.mark.parametrize("params,names", BAD_URLS, ids=lambda x: _ids(x) if isinstance(x, dict) else "")
def test_bad_urls_give_a_valid_view_with_a_notice(page, params, names):
    at = open_page(page, **params)
    text = " ".join(w.value for w in at.warning)
    for name in names:
        assert f"{name}=" in text or f"{name} " in text, (name, text)
    check_figures(at)
    state, _ = settings.parse_params(params)
    for k, v in settings.to_params(state).items():  # the URL now holds the repaired values
        assert at.query_params[k] in (v, [v]), (k, at.query_params[k], v)
    if page == "forward" and "point" in params:
        assert at.slider(key="forward_point").value == 999 and at.slider(key="forward_which").value == 0
