"""The sidebar's T means "fewer, bigger steps over the same journey to noise": the beta range is stated for
T = 1000 and scaled by 1000 / T (clipped at 0.999), so every default schedule reaches noise at every T, and
a schedule that does not is named on the page with its abar_T."""

from __future__ import annotations

import math

import pytest
import torch

from lessons import settings
from tests.helpers import open_page
from toy_models.schedules import beta_range_for_T, make_schedule


@pytest.mark.parametrize("schedule", settings.SCHEDULES)
@pytest.mark.parametrize("T", [settings.T_MIN, 2, 3, 5, 10, 50, 200, 1000, settings.T_MAX])
def test_default_schedules_reach_noise_at_every_T(schedule, T):
    s = settings.build_schedule(settings.FrameState(schedule=schedule, T=T))
    assert s.T == T
    assert s.alphas_cumprod[-1].item() <= 0.01
    assert settings.prior_mismatch(s) is None


def test_beta_range_is_scaled_by_1000_over_T_and_clipped():
    assert beta_range_for_T(1e-4, 0.02, 1000) == (1e-4, 0.02)
    assert beta_range_for_T(1e-4, 0.02, 50) == pytest.approx((2e-3, 0.4))
    assert beta_range_for_T(1e-4, 0.02, 2000) == pytest.approx((5e-5, 0.01))
    assert beta_range_for_T(1e-4, 0.02, 10) == pytest.approx((1e-2, 0.999))  # 0.02 * 100 = 2 -> 0.999
    # the sidebar's schedule is make_schedule of the scaled range
    s = settings.build_schedule(settings.FrameState(T=50, beta_1=3e-4, beta_T=0.01))
    ref = make_schedule("linear", 50, beta_start=6e-3, beta_end=0.2)
    assert torch.allclose(s.betas, ref.betas, rtol=1e-12, atol=0)


def test_sum_of_betas_is_about_the_same_journey_at_every_T():
    """-log abar_T = -sum log(1 - beta_t) ~ sum beta_t = T (b1 + bT) / 2 * 1000 / T: the same for every T where
    no beta is clipped. Checked in float64 against the first-order figure 1000 (1e-4 + 0.02) / 2 = 10.05; since
    -log(1 - beta) >= beta, a smaller T (bigger betas) only ends nearer to noise."""
    for T in (50, 200, 1000, 2000):
        s = settings.build_schedule(settings.FrameState(T=T))
        assert s.betas[1:].sum().item() == pytest.approx(10.05, rel=1e-9)
        assert -math.log(s.alphas_cumprod[-1].item()) >= 10.05
        if T >= 200:  # betas <= 0.1: the first order holds to within 5%
            assert -math.log(s.alphas_cumprod[-1].item()) == pytest.approx(10.05, rel=0.05)


def test_T_below_two_in_the_url_is_clamped_with_a_notice():
    state, notes = settings.parse_params({"T": "1"})
    assert state.T == 2 and len(notes) == 1 and "T=1" in notes[0]


def test_summary_names_the_range_in_force_and_abar_T():
    text = settings.schedule_summary(settings.build_schedule(settings.FrameState(T=50)))
    assert "T = 50" in text and "β_1 = 0.002" in text and "β_T = 0.4" in text and "ᾱ_T = 7.7e-06" in text
    assert "scaled by 1000/50" in text


def test_prior_mismatch_quotes_abar_T():
    s = settings.build_schedule(settings.FrameState(T=100, beta_1=1e-5, beta_T=1e-5))  # beta = 1e-4 at T = 100
    abar = s.alphas_cumprod[-1].item()
    assert abar == pytest.approx((1 - 1e-4) ** 100, rel=1e-12)
    note = settings.prior_mismatch(s)
    assert note is not None and f"ᾱ_T = {abar:.2f}" in note and "N(0, I)" in note


@pytest.mark.slow
def test_pages_show_the_range_in_force_and_warn_when_noise_is_not_reached():
    at = open_page("views/reverse_chain.py", T=50)
    assert any("In force at T = 50" in c.value and "β_T = 0.4" in c.value for c in at.sidebar.caption)
    assert not any("does not reach noise" in w.value for w in at.warning)
    at = open_page("views/reverse_chain.py", T=100, beta_1=1e-5, beta_T=1e-5)
    assert any("does not reach noise" in w.value and "ᾱ_T = 0.99" in w.value for w in at.warning)
