"""Page tests of the score lesson under streamlit's AppTest: defaults (with or without the shipped weights),
the numbers shown against independent computations, the run buttons, extremes of the sidebar and of the
page's widgets, and a hand-edited URL."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lessons import settings
from tests import helpers
from tests.test_pages_forward import check_figures
from toy_models.checkpoints import CheckpointError, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "views" / "score.py")
TIMEOUT = 240  # the buttons run samplers and ODE solves on a shared 2-core machine

pytestmark = pytest.mark.slow


def has(name: str) -> bool:
    try:
        load_checkpoint(name)
        return True
    except CheckpointError:
        return False


def open_page(**params) -> AppTest:
    return helpers.open_page(script=PAGE, timeout=TIMEOUT, **params)


def metric(at: AppTest, label_start: str) -> float:
    for m in at.metric:
        if m.label.startswith(label_start):
            return float(m.value.rstrip("%")) / (100 if m.value.endswith("%") else 1)
    raise AssertionError(f"no metric {label_start!r}")


def table(at: AppTest, column: str):
    """The (last) dataframe shown with this column."""
    found = [d.value for d in at.dataframe if column in d.value.columns]
    assert found, f"no table with column {column!r}"
    return found[-1]


def click(at: AppTest, key: str) -> AppTest:
    at.button(key=key).click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_defaults_report_the_learned_error_or_the_missing_weights():
    at = open_page(T=1000, t=50)
    assert check_figures(at) >= 4
    from toy_models.schedules import make_schedule

    assert metric(at, "ᾱ_t") == pytest.approx(float(make_schedule("linear", 1000).alphas_cumprod[50]), rel=1e-3)
    caption = " ".join(c.value for c in at.caption)
    if has("gmm"):
        assert "learned: shipped 'gmm'" in caption
        assert metric(at, "E|s_θ") > 0  # the learned field's error is measured
    else:
        warn = " ".join(w.value for w in at.warning)
        assert "gmm" in warn and "python -m toy_models train gmm" in warn
        assert metric(at, "E|s_θ") < 1e-20  # the exact model's field through the eps route IS the exact score
    infos = " ".join(i.value for i in at.info)
    if not has("mnist"):
        assert "python -m toy_models train mnist" in infos
    else:
        assert at.button(key="score_mnist_run")
    # the DSM table: DSM = weight x eps-loss, computed on the page
    df = table(at, "quantity").set_index("quantity")["value"]
    assert df["DSM loss E|s_θ + ε/√(1−ᾱ_t)|²"] == pytest.approx(df["weight × ε-loss"], rel=1e-9)


def test_buttons_run_langevin_the_flow_and_the_likelihood():
    at = open_page(T=100, t=10)
    click(at, "score_run_langevin")
    click(at, "score_run_flow")
    at.slider(key="score_flow_t").set_value(0).run()
    click(at, "score_run_lik")
    assert check_figures(at) >= 9
    nll = table(at, "NLL, nats").set_index("route")
    true = nll.loc["true −log q(x₀) (closed form)", "NLL, nats"]
    # the solver tolerance (1e-4), the start at t = 0.001 and abar_T > 0 keep the ODE NLL off the truth
    assert abs(nll.loc["ODE: exact model", "NLL, nats"] - true) < 0.5
    assert nll.loc["true −log q(x₀) (closed form)", "bits/dim"] == pytest.approx(true / (2 * math.log(2)))
    marg = table(at, "mean log q(x_t), nats")  # mean log q(x_0) of both clouds vs the data's
    ref = marg["mean log q(x_t), nats"].iloc[0]
    assert (abs(marg["mean log q(x_t), nats"] - ref) < 0.35).all(), marg


def test_too_large_a_langevin_step_warns_and_stays_finite():
    # at T = 1000 the last level's sigma_L^2 = beta_1 = 1e-4, so h_L = 1e-2 is 100 sigma_L^2: far too large
    at = open_page(T=1000, t=1)
    at.select_slider(key="score_step").set_value(1e-2)
    at.slider(key="score_each").set_value(10)
    at.slider(key="score_levels").set_value(20)
    at.radio(key="score_rule").set_value("sigma")
    click(at, "score_run_langevin")
    assert any("too large" in w.value for w in at.warning)
    check_figures(at)


@pytest.mark.parametrize(
    "params",
    [
        dict(T=1),
        dict(T=settings.T_MAX, schedule="sigmoid", beta_1=1e-5, beta_T=0.999),  # abar_T = 4e-284: still runs
        dict(T=1000, schedule="linear", beta_1=0.5, beta_T=0.999),  # abar_T underflows to 0: the ODE is off
        dict(T=20, schedule="cosine", s=0.5, t=20),
    ],
)
def test_extremes(params):
    at = open_page(**params)
    check_figures(at)
    if params.get("beta_1") == 0.5:
        assert any("underflows" in i.value for i in at.info)
        assert not any(b.key == "score_run_flow" for b in at.button)
    else:
        click(at, "score_run_langevin")
        click(at, "score_run_flow")
        check_figures(at)


def test_bad_url_t_is_clamped_with_a_notice():
    at = open_page(T=30, t=99999)
    assert at.slider(key="score_t").value == 30
    assert any("t=" in w.value or "t " in w.value for w in at.warning)


def test_a_shipped_gmm_model_is_compared_with_the_exact_score(tmp_path, monkeypatch):
    """Stand-in weights (a small untrained, non-zero MLP saved as 'gmm' in a temporary weights folder): the page
    must switch to the learned model, name it, and report its (non-zero) error against the exact score."""
    import torch

    from toy_models import checkpoints
    from toy_models.networks import MLP2D, MLPConfig
    from toy_models.recipes import get_recipe

    torch.manual_seed(0)
    cfg = {"width": 32, "n_blocks": 1, "num_classes": 5}
    net = MLP2D(MLPConfig(**cfg))
    with torch.no_grad():
        net.out.weight.normal_(0, 0.1)
    recipe = get_recipe("gmm").replace(network_config=cfg)
    checkpoints.save_checkpoint(net, recipe, tmp_path / "gmm", steps=0)
    monkeypatch.setattr(checkpoints, "WEIGHTS_DIR", tmp_path)
    at = open_page(T=50, t=5, seed=11)  # a seed no other test uses: fresh cache entries
    caption = " ".join(c.value for c in at.caption)
    assert "learned: shipped 'gmm'" in caption, caption
    assert not any("gmm.safetensors are missing" in w.value for w in at.warning)
    assert metric(at, "E|s_θ") > 1e-3
    at.select_slider(key="score_rtol").set_value(1e-2).run()
    click(at, "score_run_lik")  # the learned model through the ODE (autograd divergence) and the ELBO
    nll = table(at, "NLL, nats").set_index("route")
    assert {"ODE: learned model", "ELBO bound: learned model"} <= set(nll.index)
    assert nll["NLL, nats"].notna().all()
    check_figures(at)


def test_the_sde_example_and_the_dequantization_offset_are_computed_on_the_page():
    """At T = 50 (betas scaled to 0.002..0.4) the page quotes beta_50 = 0.4 and beta(t) = -log(0.6) = 0.5108, the
    cosine end's -log(0.001) = 6.908, and the 8-bit offset log2(127.5) = 6.994."""
    at = open_page(T=50, t=5)
    text = " ".join(m.value for m in at.markdown)
    assert f"β_t = 0.4 and β(t) = −log(1 − β_t) = {-math.log(0.6):.4g}" in text
    assert f"{-math.log(0.001):.4g}" in text
    assert f"log₂ 127.5 = {math.log2(127.5):.3f} bits" in text
    assert "h_i" in text and "α_i" not in text  # the Langevin step is h_i; alpha_t stays 1 - beta_t
