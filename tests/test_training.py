"""Recipes and the Trainer: loss goes down, EMA follows its formula, stop works, objectives agree."""

import math

import pytest
import torch

from toy_models import networks
from toy_models.elbo import l_simple
from toy_models.recipes import RECIPES, Recipe, get_recipe
from toy_models.schedules import schedule_from_dict
from toy_models.training import Trainer, TrainingError, pick_device, random_masks, resolve_recipe

torch.set_num_threads(1)


def _tiny(**changes):
    return get_recipe("tiny").replace(**changes)


# --- recipes -------------------------------------------------------------------------------------
def test_get_recipe_unknown_lists_names():
    with pytest.raises(ValueError, match="valid names: .*moons.*mnist"):
        get_recipe("moonz")


def test_required_recipes_exist_and_build():
    for name in (
        "moons",
        "swissroll",
        "rings",
        "checkerboard",
        "gmm",
        "gmm-classifier",
        "mnist",
        "mnist-classifier",
        "mnist-inpaint",
        "tiny",
        "moons-vlb",
        "moons-hybrid",
        "moons-cond",
    ):
        r = resolve_recipe(name)
        assert Recipe.from_dict(r.to_dict()) == r
        net = networks.build_network(r.network, r.network_config, schedule_from_dict(r.schedule))
        if r.kind != "classifier":
            assert r.objective in ("simple", "vlb", "hybrid") and r.schedule["name"]
            assert net.parameterization == "eps"
    mc = resolve_recipe("moons-cond")  # conditioning by input on two moons: label = which moon, plus the null label
    assert mc.conditional and mc.network_config["num_classes"] == 2 and mc.p_uncond > 0
    gmm = resolve_recipe("gmm")
    assert gmm.conditional and 0.1 <= gmm.p_uncond <= 0.2 and gmm.network_config["num_classes"] >= 2
    m = RECIPES["mnist"]
    assert 64 <= m.batch_size <= 128 and 2e-4 <= m.lr <= 1e-3 and m.ema_decay == 0.999 and m.p_uncond == 0.1


def test_bad_recipe_fields_fail_with_allowed_values():
    with pytest.raises(ValueError, match="objective must be one of"):
        _tiny(objective="l1")
    with pytest.raises(ValueError, match="unknown recipe field"):
        Recipe.from_dict({**RECIPES["tiny"].to_dict(), "lr_max": 1})


def test_pick_device():
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="one of"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            pick_device("cuda")


# --- the trainer -----------------------------------------------------------------------------------
def _fixed_loss(trainer, seed=123, n=4096):
    """L_simple of the raw model on a fixed batch, fixed t and noise (an independent yardstick);
    also E[abar_t] over those t."""
    g = torch.Generator().manual_seed(seed)
    x0 = trainer.x_data[:n]
    t = torch.randint(1, trainer.schedule.T + 1, (n,), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    with torch.no_grad():
        loss = l_simple(trainer.schedule, trainer.model, x0, t, noise=noise).mean().item() / 2
    return loss, trainer.schedule.alphas_cumprod[t].mean().item()


@pytest.mark.slow
def test_trainer_lowers_the_loss_on_tiny():
    tr = Trainer("tiny", device="cpu")
    before, mean_abar = _fixed_loss(tr)
    # the fresh net is its Gaussian skip, eps = sqrt(1 - abar) x_t; for zero-mean unit-variance data
    # its loss per dimension is E||eps - sqrt(1 - abar) x_t||^2 / D = abar_t, averaged over t
    assert before == pytest.approx(mean_abar, abs=0.05)
    recs = tr.run(150)
    assert len(recs) == 150 and recs[-1]["step"] == 150 == tr.step_count
    after, _ = _fixed_loss(tr)
    assert after < 0.93 * before, (before, after)  # the skip is already a fair predictor: a 7 % cut is real
    b = recs[-1]["bucket_losses"]
    assert len(b) == 10 and all(v is not None for v in b)
    # at large t, x_t is almost pure noise, so eps is easy to predict; at small t it is the hard part
    assert b[0] > b[-1]
    assert recs[-1]["wall_time_s"] > 0 and recs[-1]["lr"] > 0


def test_same_seed_same_run_different_seed_differs():
    a, b, c = (Trainer("tiny", device="cpu", seed=s) for s in (1, 1, 2))
    la, lb, lc = ([tr.step()["loss"] for _ in range(3)] for tr in (a, b, c))
    assert la == lb and la != lc


@pytest.mark.slow
def test_ema_follows_its_formula_and_tracks_the_weights():
    d = 0.9
    tr = Trainer(_tiny(ema_decay=d, ema_warmup=False), device="cpu")
    init = [p.detach().clone() for p in tr.model.parameters()]
    tr.step()
    for pe, p0, p in zip(tr.ema_model.parameters(), init, tr.model.parameters()):
        torch.testing.assert_close(pe, d * p0 + (1 - d) * p.detach())  # ema <- d ema + (1 - d) theta
    tr.run(60)

    def dist(a, b):
        return math.sqrt(sum(((x - y) ** 2).sum().item() for x, y in zip(a, b)))

    raw = list(tr.model.parameters())
    ema = list(tr.ema_model.parameters())
    assert dist(ema, raw) > 0  # EMA weights differ from the raw ones
    assert dist(ema, raw) < 0.5 * dist(init, raw)  # ...but follow them (closer than the start is)


def test_stop_and_should_stop():
    tr = Trainer("tiny", device="cpu")
    recs = tr.run(1000, callback=lambda r: tr.stop() if r["step"] == 5 else None)
    assert len(recs) == 5
    recs = tr.run(1000, should_stop=lambda: tr.step_count >= 8)
    assert len(recs) == 3 and tr.step_count == 8  # stop() was cleared: a new run goes on


def test_nan_loss_stops_with_clear_error():
    x = torch.randn(64, 2)
    x[3, 0] = float("nan")
    tr = Trainer(_tiny(batch_size=64), device="cpu", data=(x, None))
    with pytest.raises(TrainingError, match="loss became nan.*learning rate"):
        for _ in range(50):
            tr.step()


def test_objectives_hybrid_is_simple_plus_lambda_vlb():
    """With the same seed (same init, batch, t and noise), hybrid = simple + lambda * vlb exactly."""
    lam = 0.01
    losses = {}
    for obj in ("simple", "vlb", "hybrid"):
        tr = Trainer(_tiny(objective=obj, vlb_weight=lam), device="cpu", seed=5)
        x0, y = tr._batch()
        t, p = tr._sample_t()
        losses[obj] = tr._losses(x0, y, t, p).detach()
    torch.testing.assert_close(losses["hybrid"], losses["simple"] + lam * losses["vlb"])
    assert not torch.allclose(losses["vlb"], losses["simple"])


def test_importance_sampling_of_t_follows_the_loss_history():
    tr = Trainer(_tiny(objective="vlb", vlb_sampling="importance", batch_size=4000), device="cpu")
    t, p = tr._sample_t()  # history not full yet: uniform
    torch.testing.assert_close(p, torch.full_like(p, 1 / tr.schedule.T))
    tr._vlb_hist[:] = 1e-6
    tr._vlb_hist[7] = 1.0  # t = 7 has by far the largest E[L^2]
    tr._vlb_count[:] = 10
    t, p = tr._sample_t()
    assert (t == 7).float().mean() > 0.9
    assert p[t == 7][0] > 0.9


def test_label_dropout_rate():
    tr = Trainer(get_recipe("gmm").replace(batch_size=4000), device="cpu")
    _, y = tr._batch()
    frac = (y == tr.model.num_classes).float().mean().item()
    p = tr.recipe.p_uncond
    assert abs(frac - p) < 4 * math.sqrt(p * (1 - p) / 4000)


def test_random_masks_kinds():
    g = torch.Generator().manual_seed(0)
    half = random_masks(20, ["half"], generator=g)
    assert half.shape == (20, 1, 28, 28) and (half.sum((1, 2, 3)) == 392).all()
    box = random_masks(50, ["box"], generator=g)
    unknown = 784 - box.sum((1, 2, 3))
    assert (unknown >= 36).all() and (unknown <= 18 * 18).all()
    pix = random_masks(200, ["pixels"], generator=g)
    frac = pix.mean((1, 2, 3))
    assert frac.min() > 0.01 and frac.max() < 0.6 and 0.2 < frac.mean() < 0.35
    with pytest.raises(ValueError, match="mask kinds"):
        random_masks(2, ["circle"])


def test_snapshot_is_repeatable_and_shaped():
    pytest.importorskip("toy_models.samplers")
    tr = Trainer("tiny", device="cpu")
    tr.run(20)
    a, b = tr.snapshot(), tr.snapshot()
    assert a.shape == (64, 2) and torch.isfinite(a).all()
    torch.testing.assert_close(a, b)  # the same x_T each time
    recs = tr.run(10, snapshot_every=5)
    assert [("samples" in r) for r in recs] == [False] * 4 + [True] + [False] * 4 + [True]


@pytest.mark.slow
def test_classifier_learns_labels_at_small_t():
    r = get_recipe("gmm-classifier").replace(
        network_config={"width": 64, "n_blocks": 1, "num_classes": -1}, batch_size=256, steps=150
    )
    tr = Trainer(r, device="cpu")
    tr.run(150)
    x, y = tr.x_data[:1000], tr.y_data[:1000]
    with torch.no_grad():
        logits = tr.ema_model(x, torch.full((1000,), 1.0))
    acc = (logits.argmax(1) == y).float().mean().item()
    k = tr.model.num_classes
    assert acc > 1.5 / k, acc  # well above chance at t = 1


def test_inpaint_trainer_steps():
    pytest.importorskip("toy_models.data")
    x = torch.rand(32, 1, 28, 28) * 2 - 1
    y = torch.randint(10, (32,))
    r = get_recipe("mnist-inpaint").replace(
        batch_size=4,
        init_from=None,
        network_config={"channels": [8, 16, 16], "groups": 4, "num_classes": 10, "attention": False},
    )
    tr = Trainer(r, device="cpu", data=(x, y))
    rec = tr.step()
    assert math.isfinite(rec["loss"]) and rec["loss"] == pytest.approx(1.0, abs=0.5)
