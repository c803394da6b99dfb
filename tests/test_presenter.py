"""Presenter mode, deep links and the copy-link control, under streamlit's AppTest.

Presenter mode (URL present=1): one figure at a time, in the order the page draws them, with step
buttons; prose, equations and code left out. Deep links: every URL-backed widget of every page starts
from its URL parameter and writes it back. The copy-link control: the sidebar's inline link
(`.st-key-page_link`) holds the URL of the current view.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lessons import forward as LF
from lessons import reverse_chain as LR
from lessons import settings
from tests import helpers

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
TIMEOUT = 300  # the reverse-chain and ELBO pages compute for a minute on a first, cold run (2 shared cores)

pytestmark = pytest.mark.slow


def open_page(page: str, **params) -> AppTest:
    """A fresh session on views/<page>.py (or the home page) with URL query parameters `params`."""
    return helpers.open_page(None if page == "home" else f"views/{page}.py", timeout=TIMEOUT, **params)


def chart_keys(at: AppTest) -> list[str]:
    """The keys of the plotly charts on the page, in order (an element id is '$$ID-<hash>-<key>')."""
    return [el.proto.id.split("-", 2)[2] for el in at.get("plotly_chart")]


def query(at: AppTest, name: str):
    v = at.query_params.get(name)
    return v[-1] if isinstance(v, list) else v


def bar_text(at: AppTest) -> str:
    return next(m.value for m in at.markdown if "figure" in m.value and " of " in m.value)


# --- presenter mode --------------------------------------------------------------------------------------
def test_presenter_steps_through_every_figure_in_page_order():
    normal = open_page("forward", T=100)
    assert "fig_anim" not in chart_keys(normal)  # the play section is sent once opened...
    normal.session_state["forward_play"] = True
    normal.run()
    keys = chart_keys(normal)
    assert "fig_anim" in keys and len(keys) >= 8 and len(set(keys)) == len(keys)  # ...and is a slide always
    assert any(m.value == LF.INTRO for m in normal.markdown) and normal.latex and normal.expander
    assert query(normal, "present") is None and query(normal, "slide") is None

    at = open_page("forward", T=100, present=1)
    seen = []
    for i in range(1, len(keys) + 1):
        assert len(at.get("plotly_chart")) == 1, i
        seen += chart_keys(at)
        assert bar_text(at) == f"**figure {i} of {len(keys)}**"
        assert query(at, "slide") == str(i) and query(at, "present") == "1"
        assert at.button(key="present_prev").disabled == (i == 1)
        assert at.button(key="present_next").disabled == (i == len(keys))
        if i < len(keys):
            at.button(key="present_next").click().run()
            assert not at.exception
    assert seen == keys  # one figure per slide, in the order the page draws them
    # prose, equations and code are left out; the controls stay
    assert not any(LF.INTRO in m.value or LF.NARRATIVE in m.value for m in at.markdown)
    assert not at.latex and not at.expander
    assert at.slider(key="forward_t").value == 10 and at.slider(key="forward_n_traj").value == 3
    at.button(key="present_prev").click().run()
    assert chart_keys(at) == [keys[-2]] and query(at, "slide") == str(len(keys) - 1)


def test_slide_in_the_url_and_its_repairs():
    normal = chart_keys(open_page("schedule_lab", T=100))
    at = open_page("schedule_lab", T=100, present=1, slide=2)
    assert chart_keys(at) == [normal[1]] and not at.warning

    at = open_page("schedule_lab", T=100, present=1, slide=99)  # past the last figure
    text = " ".join(w.value for w in at.warning)
    assert "slide=99" in text and f"[1, {len(normal)}]" in text, text
    assert chart_keys(at) == [normal[-1]] and query(at, "slide") == str(len(normal))

    at = open_page("schedule_lab", T=100, present=1, slide="abc")
    assert "slide='abc'" in " ".join(w.value for w in at.warning)
    assert chart_keys(at) == [normal[0]] and query(at, "slide") == "1"

    at = open_page("schedule_lab", T=100, present="maybe")
    assert "present='maybe'" in " ".join(w.value for w in at.warning)
    assert len(at.get("plotly_chart")) == len(normal)  # not presenting


def test_sidebar_toggle_and_the_way_out():
    at = open_page("home", T=50)
    n = len(at.get("plotly_chart"))
    assert n >= 2 and at.latex
    at.sidebar.toggle(key="frame_present").set_value(True).run()
    assert not at.exception
    assert len(at.get("plotly_chart")) == 1 and not at.latex
    assert query(at, "present") == "1" and query(at, "slide") == "1"
    at.button(key="present_exit").click().run()
    assert not at.exception
    assert len(at.get("plotly_chart")) == n and at.latex
    assert query(at, "present") is None and query(at, "slide") is None
    assert at.sidebar.toggle(key="frame_present").value is False


def test_copy_link_holds_the_current_view():
    at = open_page("forward", T=100, t=42, present=1)

    def link():
        boxes = [m.value for m in at.sidebar.markdown if m.value.startswith("`") and m.value.endswith("`")]
        assert len(boxes) == 1, boxes
        return boxes[0].strip("`")

    assert "T=100" in link() and "t=42" in link() and "present=1" in link() and "slide=1" in link()
    assert link().split("?")[0].endswith("forward")
    at.slider(key="forward_t").set_value(77).run()
    assert "t=77" in link() and "t=42" not in link()
    at.button(key="present_exit").click().run()
    assert "present" not in link() and "slide" not in link()


# --- deep links: every URL-backed widget of every page ------------------------------------------------------
# page -> {URL parameter: (widget kind, widget key, the value in the URL, the value the widget must show)}
DEEP = {
    "forward": {
        "t": ("slider", "forward_t", "37", 37),
        "point": ("slider", "forward_point", "5", 5),
        "t_chain": ("slider", "forward_t_chain", "41", 41),
        "t_digit": ("slider", "forward_t_digit", "43", 43),
        "digit": ("slider", "forward_digit", "7", 7),
        "which": ("slider", "forward_which", "2", 2),
        "chains": ("slider", "forward_n_traj", "6", 6),
    },
    "schedule_lab": {
        "t": ("slider", "lab_t", "77", 77),
        "left": ("selectbox", "lab_a", "sigmoid", "sigmoid"),
        "right": ("selectbox", "lab_b", "linear", "linear"),
        "digit": ("slider", "lab_digit", "8", 8),
    },
    "reverse_chain": {
        "cut": ("select_slider", "rc_T", str(LR.T_CHOICES[-1]), LR.T_CHOICES[-1]),
        "level": ("slider", "rc_level", "0.75", 0.75),
        "x1": ("slider", "rc_x1", "1.2", 1.2),
        "x2": ("slider", "rc_x2", "-0.7", -0.7),
        "x0_1": ("slider", "rc_x0a", "-2", -2.0),
        "x0_2": ("slider", "rc_x0b", "0.5", 0.5),
        "xt_1": ("slider", "rc_xta", "2.5", 2.5),
        "xt_2": ("slider", "rc_xtb", "0.3", 0.3),
        "tpost": ("slider", "rc_tpost", "40", 40),
        "particles": ("select_slider", "rc_n", "1000", 1000),
        "step": ("slider", "rc_step", "25", 25),
        "follow": ("multiselect", "rc_idx", "5,7", [5, 7]),
        "ndig": ("slider", "rc_ndig", "4", 4),
        "ddim": ("slider", "rc_ddim", "10", 10),
        "variance": ("radio", "rc_var", "beta", "beta"),
        "ddpm": ("toggle", "rc_ddpm", "0", False),
        "dstep": ("slider", "rc_dstep", "3", 3),
    },
    "elbo": {
        "variance": ("radio", "elbo_variance", "beta", "beta"),
        "learned_stride": ("select_slider", "elbo_learned_stride", "20", 20),
        "learned": ("toggle", "elbo_learned_go", "1", True),
        "ode": ("toggle", "elbo_ode", "0", False),
        "mnist_n": ("select_slider", "elbo_mnist_n", "8", 8),
        "mnist_stride": ("select_slider", "elbo_mnist_stride", "10", 10),
        "point": ("slider", "elbo_point", "7", 7),
        "t_est": ("slider", "elbo_t_est", "3", 3),
    },
    "score": {
        "t": ("slider", "score_t", "50", 50),
        "rule": ("radio", "score_rule", "snr", "snr"),
        "eps": ("select_slider", "score_step", "1e-4", 1e-4),
        "each": ("slider", "score_each", "3", 3),
        "levels": ("slider", "score_levels", "20", 20),
        "rtol": ("select_slider", "score_rtol", "0.001", 1e-3),
        "mnist_n": ("slider", "score_mnist_n", "3", 3),
        "probes": ("slider", "score_mnist_probes", "2", 2),
    },
    "conditional": {
        "model": ("radio", "cond_source", "learned (weights/gmm)", "learned (weights/gmm)"),
        "y": ("selectbox", "cond_label", "2", 2),
        "steps": ("slider", "cond_steps", "10", 10),
        "moon": ("radio", "cond_moon", "1", 1),
        "t": ("slider", "cond_t", "30", 30),
        "cg_s": ("slider", "cond_s", "1.5", 1.5),
        "w": ("slider", "cond_w", "2.5", 2.5),
        "digit": ("selectbox", "cond_digit", "5", 5),
        "w_mnist": ("slider", "cond_w_mnist", "1", 1.0),
        "full": ("checkbox", "cond_full", "0", False),
        "cg_s_mnist": ("slider", "cond_s_mnist", "2", 2.0),
        "sweep": ("toggle", "cond_sweep", "0", False),
    },
    "inpainting": {
        "x1": ("slider", "inp_value", "-1", -1.0),
        "steps_2d": ("slider", "inp_steps_2d", "20", 20),
        "r_2d": ("slider", "inp_resample_2d", "2", 2),
        "digit": ("selectbox", "inp_digit", "4", 4),
        "which": ("number_input", "inp_which", "3", 3),
        "mask": ("selectbox", "inp_mask", "top half", "top half"),
        "steps": ("slider", "inp_steps", "10", 10),
        "r": ("slider", "inp_resample", "2", 2),
        "step_replacement": ("slider", "inp_step_replacement", "1", 1),
        "step_fine-tuned": ("slider", "inp_step_fine-tuned", "2", 2),
    },
}
# Widgets whose state is not in the URL: buttons (an action, not a state), file uploads, the custom-mask
# editor (inp_blocks), and a click on a chart (rc_pick: it moves rc_x1/rc_x2, which are in the URL).
EXEMPT = {"inp_blocks", "rc_pick"}
KINDS = (
    "slider",
    "select_slider",
    "selectbox",
    "radio",
    "toggle",
    "checkbox",
    "number_input",
    "multiselect",
    "text_input",
    "text_area",
    "date_input",
    "color_picker",
)


@pytest.mark.parametrize("page", list(DEEP))
def test_deep_link_sets_every_widget(page):
    spec = DEEP[page]
    at = open_page(page, T=100, seed=3, **{name: raw for name, (_, _, raw, _) in spec.items()})
    assert not at.warning, [w.value for w in at.warning]
    for name, (kind, key, _raw, value) in spec.items():
        shown = getattr(at, kind)(key=key).value
        if isinstance(value, float):
            assert shown == pytest.approx(value), (name, shown)
        else:
            assert shown == value, (name, shown)
        assert query(at, name) == settings.format_param(value), (name, query(at, name))  # written back
    # the audit: every widget in the main area is URL-backed (in the table above) or exempt
    main_keys = {el.key for kind in KINDS for el in at.main.get(kind) if el.key}
    listed = {key for _, key, _, _ in spec.values()}
    assert main_keys - listed - EXEMPT == set(), f"widgets on {page} without a URL parameter"
    assert at.sidebar.toggle(key="frame_present").value is False


def test_bad_page_parameters_are_repaired_with_a_notice():
    at = open_page("reverse_chain", T=100, particles="7", follow="3,x", level="9", ddpm="maybe", variance="huge")
    text = " ".join(w.value for w in at.warning)
    for name in ("particles", "follow", "level", "ddpm", "variance"):
        assert name in text, (name, text)
    assert at.select_slider(key="rc_n").value == 500 and at.multiselect(key="rc_idx").value == [3]
    assert at.slider(key="rc_level").value == 1.0 and at.toggle(key="rc_ddpm").value is False
    assert query(at, "particles") == "500" and query(at, "follow") == "3" and query(at, "level") == "1"


def test_code_expander_sends_the_real_source_only_once_open():
    """show_source: a closed expander sends no code (the browser would highlight it on every first paint);
    opened, it shows exactly inspect.getsource of the functions the page runs."""
    import inspect

    from course.present import source_key
    from lessons.forward import gmm_kl_curve
    from toy_models.diffusion import q_sample

    at = open_page("forward", T=100)
    assert "Show the code that runs: q_sample, gmm_kl_curve" in [e.label for e in at.main.expander]
    assert not at.main.code
    at.session_state[source_key((q_sample, gmm_kl_curve), "Show the code that runs: q_sample, gmm_kl_curve")] = True
    at.run()
    assert [c.value.strip() for c in at.main.code] == [inspect.getsource(f).strip() for f in (q_sample, gmm_kl_curve)]
