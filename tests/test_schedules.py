"""Schedules: closed forms, indexing, and the messages bad parameters give."""

import math

import pytest
import torch

from toy_models.schedules import (
    DEFAULT_PARAMS,
    make_schedule,
    schedule_from_dict,
    schedule_to_dict,
)


def test_linear_matches_ho_et_al():
    s = make_schedule("linear", 1000)
    assert s.betas.dtype == torch.float64
    assert s.betas.shape == (1001,)
    assert s.betas[0] == 0 and s.alphas_cumprod[0] == 1  # entry 0 is t = 0, the clean data
    assert s.betas[1].item() == pytest.approx(1e-4) and s.betas[1000].item() == pytest.approx(0.02)
    # abar_T for Ho et al.'s schedule, by an independent product in plain Python
    prod = 1.0
    for i in range(1000):
        prod *= 1 - (1e-4 + (0.02 - 1e-4) * i / 999)
    assert s.alphas_cumprod[1000].item() == pytest.approx(prod, rel=1e-10)


def test_cosine_follows_nichol_dhariwal_eq17():
    T, sp = 200, 0.008
    s = make_schedule("cosine", T, s=sp)
    f = lambda t: math.cos((t / T + sp) / (1 + sp) * math.pi / 2) ** 2
    for t in (1, 17, 100, 150):
        assert s.alphas_cumprod[t].item() == pytest.approx(f(t) / f(0), rel=1e-9)
    assert s.betas.max().item() <= 0.999 + 1e-12  # the clip at the end


def test_sigmoid_is_monotone_between_its_ends():
    s = make_schedule("sigmoid", 500, beta_start=1e-4, beta_end=0.03)
    b = s.betas[1:]
    assert torch.all(b[1:] >= b[:-1])
    assert 1e-4 < b[0].item() < 2e-4 and 0.0299 < b[-1].item() < 0.03


def test_derived_tables_against_their_definitions():
    s = make_schedule("linear", 50, beta_start=1e-3, beta_end=0.2)
    for t in (1, 2, 25, 50):
        abar, abar_prev, beta = s.alphas_cumprod[t], s.alphas_cumprod[t - 1], s.betas[t]
        assert s.alphas_cumprod_prev[t] == abar_prev
        assert s.posterior_variance[t].item() == pytest.approx((beta * (1 - abar_prev) / (1 - abar)).item())
        assert s.posterior_mean_coef1[t].item() == pytest.approx((beta * abar_prev.sqrt() / (1 - abar)).item())
        assert s.posterior_mean_coef2[t].item() == pytest.approx(
            ((1 - abar_prev) * (1 - beta).sqrt() / (1 - abar)).item()
        )
        assert s.log_snr[t].item() == pytest.approx(math.log(abar / (1 - abar)))
        assert s.log_betas[t].item() == pytest.approx(math.log(beta))
        assert s.sqrt_betas[t].item() == pytest.approx(math.sqrt(beta))
        assert s.sqrt_alphas[t].item() == pytest.approx(math.sqrt(1 - beta))
        assert s.one_minus_alphas_cumprod[t].item() == pytest.approx(1 - abar.item())
    assert math.isfinite(s.log_betas[0])  # beta_0 = 0: clamped, so the table is finite everywhere
    assert s.posterior_variance[1] == 0  # nothing left to be uncertain about at the last step
    assert s.posterior_log_variance_clipped[1] == pytest.approx(math.log(s.posterior_variance[2]))
    assert torch.all(s.log_snr[2:] < s.log_snr[1:-1])  # signal-to-noise falls with t


def test_custom_schedule_and_round_trip():
    s = make_schedule("custom", 3, betas=[0.1, 0.2, 0.3])
    assert s.alphas_cumprod[3].item() == pytest.approx(0.9 * 0.8 * 0.7)
    for name in ("linear", "cosine", "sigmoid"):
        a = make_schedule(name, 20)
        b = schedule_from_dict(schedule_to_dict(a))
        assert torch.equal(a.betas, b.betas)
    assert torch.equal(schedule_from_dict(schedule_to_dict(s)).betas, s.betas)


def test_T_equal_one_is_valid():
    s = make_schedule("linear", 1, beta_start=0.5, beta_end=0.5)
    assert s.alphas_cumprod[1].item() == pytest.approx(0.5)
    assert torch.isfinite(s.posterior_log_variance_clipped).all()


def test_continuous_alpha_bar_interpolates_the_table():
    s = make_schedule("cosine", 100)
    t = torch.arange(0, 101, dtype=torch.float64)
    assert torch.allclose(s.alpha_bar(t), s.alphas_cumprod, rtol=1e-12)
    mid = s.alpha_bar(torch.tensor(10.5))
    assert mid.item() == pytest.approx(math.sqrt(s.alphas_cumprod[10] * s.alphas_cumprod[11]), rel=1e-12)
    # beta(t) = -d log abar / dt, checked by a finite difference inside a step
    h = 1e-4
    fd = -(
        torch.log(s.alpha_bar(torch.tensor(40.3 + h, dtype=torch.float64)))
        - torch.log(s.alpha_bar(torch.tensor(40.3 - h, dtype=torch.float64)))
    ) / (2 * h)
    assert s.beta_continuous(torch.tensor(40.3)).item() == pytest.approx(fd.item(), rel=1e-6)


@pytest.mark.parametrize(
    "name, T, params, words",
    [
        ("quadratic", 10, {}, "valid names: linear, cosine, sigmoid, custom"),
        ("linear", 0, {}, "T must be an integer from 1"),
        ("linear", 2.5, {}, "T must be an integer"),
        ("linear", "ten", {}, "T must be an integer"),
        ("linear", 10, {"beta_end": 1.0}, "strictly between 0 and 1"),
        ("linear", 10, {"beta_start": 0.0}, "strictly between 0 and 1"),
        ("linear", 10, {"beta_end": -0.1}, "strictly between 0 and 1"),
        ("cosine", 10, {"s": -1}, "s must lie in [0, 1]"),
        ("linear", 10, {"s": 0.1}, "valid: beta_start, beta_end"),
        ("custom", 2, {"betas": [0.1, 1.2]}, "beta_2 = 1.2"),
        ("custom", 3, {"betas": [0.1, 0.2]}, "give exactly T betas"),
        ("custom", 3, {}, "needs betas"),
        ("sigmoid", 10, {"width": 0}, "width must be positive"),
    ],
)
def test_bad_parameters_say_what_is_allowed(name, T, params, words):
    with pytest.raises(ValueError) as e:
        make_schedule(name, T, **params)
    assert words in str(e.value)


def test_every_named_schedule_has_defaults():
    for name in ("linear", "cosine", "sigmoid"):
        s = make_schedule(name, 1000)
        assert set(s.params) == set(DEFAULT_PARAMS[name])
        assert 0 < s.alphas_cumprod[-1].item() < 1e-3  # almost nothing of the data is left at T
