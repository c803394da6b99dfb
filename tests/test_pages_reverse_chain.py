"""Page tests of lesson 3 (the reverse chain) under streamlit's AppTest: defaults, every widget at its
extremes, hand-edited URLs, with shipped weights (skipped when missing), without any weights, and with
tiny random checkpoints (so the learned-model and MNIST code paths always run). Numbers shown are
checked against the lesson's computations; the chain drawn is the sampler's own."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
import torch
from streamlit.testing.v1 import AppTest

from lessons import reverse_chain as L
from lessons.settings import FrameState, build_schedule
from tests import helpers
from tests.test_pages_forward import check_figures
from toy_models.gmm import default_gmm
from toy_models.guidance import null_labels

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "views" / "reverse_chain.py")
TIMEOUT = 120

pytestmark = pytest.mark.slow


def clear_caches():
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    """An empty weights folder: every checkpoint is missing."""
    import toy_models.checkpoints as C

    monkeypatch.setattr(C, "WEIGHTS_DIR", tmp_path)
    clear_caches()
    yield tmp_path
    clear_caches()


@pytest.fixture
def fake_weights(tmp_path, monkeypatch):
    """Tiny random checkpoints named 'moons' and 'mnist' (T = 20): the learned and MNIST paths run fast."""
    import toy_models.checkpoints as C
    from toy_models.networks import build_network
    from toy_models.recipes import get_recipe
    from toy_models.schedules import make_schedule

    monkeypatch.setattr(C, "WEIGHTS_DIR", tmp_path)
    sched = {"name": "linear", "T": 20, "params": {"beta_start": 1e-3, "beta_end": 0.3}}
    torch.manual_seed(0)
    s20 = make_schedule("linear", 20, beta_start=1e-3, beta_end=0.3)
    r2 = get_recipe("tiny").replace(schedule=sched)
    C.save_checkpoint(build_network(r2.network, r2.network_config, s20), r2, tmp_path / "moons", schedule=s20, steps=0)
    rm = get_recipe("mnist").replace(
        schedule=sched, network_config={"channels": [8, 8], "attention": False, "num_classes": 10, "time_embed_dim": 16}
    )
    C.save_checkpoint(build_network(rm.network, rm.network_config), rm, tmp_path / "mnist", schedule=s20, steps=0)
    clear_caches()
    yield tmp_path
    clear_caches()


def open_page(**params) -> AppTest:
    return helpers.open_page(script=PAGE, timeout=TIMEOUT, **params)


def rerun(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    check_figures(at)
    return at


def by_label(widgets, label):
    for w in widgets:
        if w.label == label:
            return w
    raise AssertionError(f"no widget labelled {label!r}; have {[w.label for w in widgets]}")


def chart(at: AppTest, key: str) -> dict:
    for el in at.get("plotly_chart"):
        if key in el.proto.id or getattr(el, "key", None) == key:
            return json.loads(el.proto.spec)
    raise AssertionError(f"no chart {key}")


def trace_xy(fig: dict, name_prefix: str) -> np.ndarray:
    import base64

    for tr in fig["data"]:
        if tr.get("name", "").startswith(name_prefix):
            out = []
            for k in ("x", "y"):
                v = tr[k]
                out.append(
                    np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"])
                    if isinstance(v, dict)
                    else np.asarray(v, dtype=float)
                )
            return np.stack(out, 1)
    raise AssertionError(f"no trace {name_prefix!r}")


# --- without weights: everything exact still works ---------------------------------------------------------
def open_sections(at: AppTest, *keys: str) -> AppTest:
    """Open the page's lazy sections (expanders computed only once open), as a student's click does."""
    for key in keys:
        at.session_state[key] = True
    return rerun(at)


def test_defaults_without_weights(no_weights):
    at = open_page()
    assert check_figures(at) >= 6
    warns = " ".join(w.value for w in at.warning)
    assert "No learned model for **moons**" in warns and "python -m toy_models train" in warns
    assert "No MNIST model" not in warns  # its section is closed: nothing of it is run
    open_sections(at, "rc_mnist")
    assert "No MNIST model" in " ".join(w.value for w in at.warning)
    # the KL shown is the computed one
    r = L.reverse_step(default_gmm(), build_schedule(FrameState()), 2, 0.5, [0.0, 0.0])
    text = " ".join(m.value for m in at.markdown)
    assert f"KL(exact ‖ best Gaussian) = {r.kl:.3g} nats" in text
    # the chain drawn is the sampler's own: x_t at the default step t = T/2, 500 particles, seed 0
    s = build_schedule(FrameState())
    run = L.ddpm_chain(L.MixtureEpsModel(default_gmm(), s), s, 500, 0)
    fig = chart(at, "fig_chain_step")
    assert [a["text"] for a in fig["layout"]["annotations"]] == [
        "exact (Gaussian mixture): t = 500, arrows ×10, x̂_0 of 300 of 500"
    ]
    shown = trace_xy(fig, "x_t")
    assert np.allclose(shown, run.xs[run.index_of(500)], atol=1e-3)


def test_small_steps_widgets_at_extremes(no_weights):
    at = open_page(T=100)  # a short sidebar chain keeps the test fast; this figure does not depend on T
    kl = {}
    for T in (2, 1000):
        by_label(at.select_slider, "steps the noise is cut into (T)").set_value(T)
        rerun(at)
        text = " ".join(m.value for m in at.markdown)
        kl[T] = float(text.split("KL(exact ‖ best Gaussian) = ")[1].split()[0])
    assert kl[1000] < 1e-6 < 0.1 < kl[2]
    for lvl in (0.05, 1.0):
        by_label(at.slider, "noise level of x_t (fraction of the way to x_T)").set_value(lvl)
        for v in (-3.0, 3.0):
            by_label(at.slider, "x_t, first coordinate").set_value(v)
            by_label(at.slider, "x_t, second coordinate").set_value(-v)
            rerun(at)


def test_posterior_and_chain_widgets_at_extremes(no_weights):
    at = open_page(T=100)
    for v in (-3.0, 3.0):
        for lab in ("x_0, first", "x_0, second", "x_t, first", "x_t, second"):
            by_label(at.slider, lab).set_value(v)
        for t in (1, 100):
            by_label(at.slider, "t (time step of x_t)").set_value(t)
            rerun(at)
    by_label(at.slider, "x_t, first").set_value(3.0)  # x_0 == x_t: the fraction is undefined, not a crash
    by_label(at.slider, "x_0, first").set_value(3.0)
    rerun(at)
    assert any("scaled copy" in c.value for c in at.caption)
    by_label(at.select_slider, "particles").set_value(500)
    for t in (0, 100):
        by_label(at.slider, "reverse step t (T → 0)").set_value(t)
        rerun(at)
    at.multiselect[0].set_value([])
    rerun(at)
    at.multiselect[0].set_value(list(range(8)))
    rerun(at)


@pytest.mark.parametrize(
    "params",
    [
        {"T": 1},
        {"T": 5, "schedule": "cosine"},
        {"T": 2000, "schedule": "sigmoid"},
        {"T": 50, "step": "abc", "tpost": "99999"},
    ],
)
def test_sidebar_extremes_and_bad_urls(no_weights, params):
    at = open_page(**params)
    check_figures(at)
    if "step" in params:
        assert any("step" in w.value for w in at.warning)
        assert by_label(at.slider, "t (time step of x_t)").value == 50  # clamped to T


# --- tiny random checkpoints: the learned and MNIST sections --------------------------------------------
def test_learned_and_mnist_sections_with_checkpoints(fake_weights):
    at = open_page(T=100)
    keys = {el.proto.id.split("-", 2)[2] for el in at.get("plotly_chart")}
    assert "fig_chain_step" in keys and not keys & {"anim_exact", "anim_learned", "fig_digits"}  # closed sections
    open_sections(at, "rc_play", "rc_mnist")
    keys = {el.proto.id.split("-", 2)[2] for el in at.get("plotly_chart")}
    assert {"anim_exact", "anim_learned", "fig_digits", "fig_digit_k", "fig_final_DDIM"} <= keys
    assert not any("No learned model" in w.value or "No MNIST" in w.value for w in at.warning)
    captions = " ".join(c.value for c in at.caption)
    assert "trained with schedule **linear (T=20" in captions
    by_label(at.slider, "reverse step t (T → 0)").set_value(0)
    rerun(at)
    for n, steps in ((2, 1), (10, 20)):
        by_label(at.slider, "digits").set_value(n)
        by_label(at.slider, "DDIM steps").set_value(steps)
        rerun(at)
        assert any(f"{steps} model calls" in str(getattr(el.proto, "spec", "")) for el in at.get("plotly_chart"))
    at.toggle[0].set_value(True)
    at.radio[0].set_value("beta")
    rerun(at)
    specs = " ".join(el.proto.spec for el in at.get("plotly_chart"))
    assert "DDPM: 20 model calls" in specs
    kept = by_label(at.slider, "kept step (T → 0)")
    kept.set_value(kept.max)
    rerun(at)


# --- the shipped weights, when they exist ------------------------------------------------------------------
def test_with_shipped_weights():
    from toy_models.checkpoints import WEIGHTS_DIR

    if not (WEIGHTS_DIR / "moons.safetensors").exists():
        pytest.skip("weights/moons.safetensors is not shipped yet (python -m toy_models train moons)")
    clear_caches()
    at = open_page()
    assert not any("No learned model" in w.value for w in at.warning)
    n = check_figures(at)
    assert n >= 7
    open_sections(at, "rc_play", "rc_mnist")  # + 2 animations and 3 digit grids, each finite and under 1 MB
    assert check_figures(at) == n + 5


# --- the prompts and the numbers the page prints, at the settings they name ------------------------------
def markdown_text(at: AppTest) -> str:
    return " ".join(m.value for m in at.markdown)


def test_prompts_true_on_the_page(no_weights):
    at = open_page()
    text = markdown_text(at)
    s = build_schedule(FrameState())
    assert L.posterior_text(s) in text and L.try_posterior(s) in text
    assert "**5 peaks**" in text  # TRY_SMALL: the default view, one peak per cluster
    kl2 = L.reverse_step(default_gmm(), s, 2, 0.5, [0.0, 0.0]).kl
    by_label(at.select_slider, "steps the noise is cut into (T)").set_value(1000)
    rerun(at)
    text = markdown_text(at)
    assert "**1 peak**" in text
    kl1000 = float(text.split("KL(exact ‖ best Gaussian) = ")[1].split()[0])
    assert kl1000 < 1e-6 * kl2  # "falls by orders of magnitude"
    caps = " ".join(c.value for c in at.caption)
    spread_half = float(caps.split("Spread of the exact model's x̂_0 at t = 500: **")[1].split("**")[0])
    data_spread = float(caps.split("(the data's: ")[1].split(")")[0])
    assert spread_half < 0.5 * data_spread  # TRY_CHAIN: x̂_0 starts as a blob ...
    by_label(at.slider, "reverse step t (T → 0)").set_value(1)
    rerun(at)
    caps = " ".join(c.value for c in at.caption)
    late = float(caps.split("x̂_0 at t = 1: **")[1].split("**")[0])
    assert abs(late - data_spread) < 0.1 * data_spread  # ... and grows to the data's
    lp = float(caps.split("samples: **")[1].split("**")[0])
    ref = float(caps.split("the mixture itself: ")[1].split(")")[0])
    assert abs(lp - ref) < 0.2


def test_try_chain_sidebar_T_2_samples_fall_off_the_data(no_weights):
    at = open_page(T=2)
    caps = " ".join(c.value for c in at.caption)
    lp = float(caps.split("samples: **")[1].split("**")[0])
    ref = float(caps.split("the mixture itself: ")[1].split(")")[0])
    assert lp < ref - 1.0
    text = markdown_text(at)
    assert "x_0 still matters" in text and "never comes within 1%" in text


def test_mnist_digits_have_no_label_and_the_identity_numbers_are_the_judges():
    """TRY_MNIST with the shipped model: at t = 900 x̂_0 is read as the final digit about as often as by chance,
    by t = 300 mostly; the page's caption quotes identity_by_step on the same chain."""
    from toy_models.metrics import JudgeError, load_judge

    ck = helpers.shipped_or_skip("mnist")
    try:
        judge = load_judge()
    except JudgeError as e:
        pytest.skip(str(e))
    chain = L.digit_chain(ck.model, ck.schedule, 64, 0, "ddim", 20)
    ident = L.identity_by_step(chain, judge, [900, 600, 300])
    assert ident[900] < 0.35 and ident[300] > 0.7 and ident[900] < ident[600] < ident[300]
    clear_caches()
    at = open_page(ndig=2, ddim=2)  # a link parameter of the section opens it
    caps = " ".join(c.value for c in at.caption)
    for t, v in ident.items():
        assert f"**{v:.0%}** at t = {t}" in caps
    y = null_labels(ck.model, 3)
    assert y.tolist() == [ck.model.num_classes] * 3  # the null label, the one dropped in training
