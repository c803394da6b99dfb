"""The training lab's lesson module: uploaded-CSV validation (every bad case refused with its message and no
points), drawn points from a lasso selection, recipe building with clear messages for invalid choices, and
the figures (labelled axes, log loss axis, finite data)."""

from __future__ import annotations

import numpy as np
import pytest

from lessons import training_lab as L
from lessons.figures import assert_no_nan, tile_images
from toy_models.recipes import get_recipe
from toy_models.schedules import make_schedule
from toy_models.training import build_model

S = make_schedule("linear", 1000)


def csv_of(rows, header: str | None = None) -> bytes:
    lines = ([header] if header else []) + [",".join(str(v) for v in r) for r in rows]
    return ("\n".join(lines) + "\n").encode()


GOOD = [(float(i), float(i % 3)) for i in range(12)]


# --- CSV validation ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw,needle",
    [
        (b"x" * (L.MAX_CSV_BYTES + 1), "the limit is 1 MB"),
        (b"\xff\xfe\x00bad", "not UTF-8 text"),
        (b"", "empty"),
        (b"\n  \n", "empty"),
        (csv_of(GOOD[:5] + [(1, 2, 3)] + GOOD[5:]), "line 6 has 3"),
        (csv_of(GOOD + [(7,)]), "exactly 2 columns"),
        (csv_of(GOOD[:4] + [("abc", 2)] + GOOD[4:], header="x,y"), "not numbers"),
        (csv_of(GOOD + [("nan", 1.0)]), "NaN or infinite"),
        (csv_of(GOOD + [(1.0, "inf")]), "NaN or infinite"),
        (csv_of(GOOD[:9], header="x,y"), "Only 9 point(s); at least 10"),
        (csv_of([(1.0, 2.0)] * 12), "All points are the same"),
    ],
)
def test_bad_csv_gives_its_message_and_no_points(raw, needle):
    pts, msg = L.parse_points_csv(raw)
    assert pts is None
    assert needle in msg, msg


def test_every_bad_csv_message_says_nothing_changed_where_points_existed():
    for raw in (csv_of(GOOD + [(1, 2, 3)]), csv_of(GOOD + [("x", 1)]), csv_of(GOOD + [("nan", 1)])):
        assert "Nothing was changed" in L.parse_points_csv(raw)[1]


def test_good_csv_parses_and_is_standardised():
    rows = [(2.0 * i, 10.0 + (i % 4)) for i in range(40)]
    raw = (
        "x;y\n" + "\n".join(f"{a}; {b}" for a, b in rows[:20]) + "\n\n" + "\n".join(f"{a}\t{b}" for a, b in rows[20:])
    ).encode("utf-8-sig")
    pts, msg = L.parse_points_csv(raw)
    assert msg is None and pts.dtype == np.float32 and pts.shape == (40, 2)
    arr = np.array(rows)
    centred = arr - arr.mean(0)
    expected = centred / np.sqrt(centred.var(0).mean())  # one scale: the aspect ratio is kept
    np.testing.assert_allclose(pts, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pts.mean(0), 0, atol=1e-6)
    assert pts.var(0).mean() == pytest.approx(1.0, rel=1e-5)


def test_csv_without_header_and_with_quotes():
    raw = "\n".join(f'"{i}","{i * i}"' for i in range(10)).encode()
    pts, msg = L.parse_points_csv(raw)
    assert msg is None and pts.shape == (10, 2)


# --- drawn points ---------------------------------------------------------------------------------------------
def test_points_from_a_lasso_selection():
    grid = L.candidate_grid()
    assert grid.shape == (L.GRID_N**2, 2)
    # duplicates and out-of-range indices are dropped
    pts, msg = L.points_from_selection([0, 1, 2, 2, 10_000_000], grid, per_point=20, seed=3)
    assert msg is None and pts.shape == (60, 2)
    pts2, _ = L.points_from_selection([0, 1, 2], grid, per_point=20, seed=3)
    np.testing.assert_array_equal(pts, pts2)  # same seed, same points
    pts, msg = L.points_from_selection([5, 6], grid)
    assert pts is None and "at least 3" in msg


def test_selected_indices_reads_trace_0_only():
    sel = {
        "points": [
            {"curve_number": 0, "point_index": 4},
            {"curve_number": 1, "point_index": 9},
            {"curve_number": 0, "point_index": 7},
        ]
    }
    assert L.selected_indices(sel) == [4, 7]
    assert L.selected_indices(None) == []


# --- recipes -------------------------------------------------------------------------------------------------
def test_build_recipe_2d_defaults():
    r, msg = L.build_recipe(
        L.LabChoice(data="rings", width=64, depth=2, objective="hybrid", steps=500, lr=1e-3, snapshot_every=50, seed=7),
        S,
    )
    assert msg is None
    assert (r.data, r.objective, r.steps, r.lr, r.seed) == ("rings", "hybrid", 500, 1e-3, 7)
    assert r.network == "mlp2d" and r.network_config == {
        "width": 64,
        "n_blocks": 2,
        "time_embed_dim": 64,
        "gaussian_skip": True,
    }  # SiLU + LayerNorm: DDIM snapshots
    assert r.schedule == {"name": "linear", "T": 1000, "params": {"beta_start": 1e-4, "beta_end": 0.02}}
    assert r.lr_warmup == 50 and not r.conditional
    assert build_model(r) is not None  # the recipe builds


def test_build_recipe_own_points_and_mnist():
    r, msg = L.build_recipe(L.LabChoice(data="own"), S, n_points=300)
    assert msg is None and r.data == "own" and r.n_train == 300
    r, msg = L.build_recipe(L.LabChoice(data="mnist", width=16, depth=2, steps=200, snapshot_every=50), S)
    assert msg is None and r.network == "unet" and r.network_config["channels"] == [16, 32]
    shipped = get_recipe("mnist").network_config  # the shipped digit U-Net's design, the user's channels
    assert {k: r.network_config[k] for k in ("skip", "upsample", "num_classes")} == {
        k: shipped[k] for k in ("skip", "upsample", "num_classes")
    }
    assert r.data == "mnist" and r.batch_size == L.BATCH_MNIST and r.init_from is None
    assert build_model(r) is not None


@pytest.mark.parametrize(
    "choice,n,needle",
    [
        (L.LabChoice(data="own"), None, "No points yet"),
        (L.LabChoice(data="own"), 4, "Only 4 points"),
        (L.LabChoice(data="mnist", depth=4), None, "at most 3 levels"),
        (L.LabChoice(data="mnist", width=20, depth=2), None, "multiple of 8"),
        (L.LabChoice(data="pancakes"), None, "Unknown data 'pancakes'"),
        (L.LabChoice(objective="ce"), None, "Unknown objective"),
        (L.LabChoice(steps=0), None, "Steps must be"),
        (L.LabChoice(lr=float("nan")), None, "learning rate"),
        (L.LabChoice(lr=-1.0), None, "learning rate"),
        (L.LabChoice(steps=100, snapshot_every=500), None, "only 100 steps"),
    ],
)
def test_invalid_choices_give_clear_messages(choice, n, needle):
    r, msg = L.build_recipe(choice, S, n_points=n)
    assert r is None and needle in msg, msg


def test_a_schedule_that_leaves_signal_at_T_is_refused():
    short = make_schedule("linear", 20)  # beta_T = 0.02 with T = 20: abar_T ~ 0.8
    r, msg = L.build_recipe(L.LabChoice(), short)
    assert r is None and "Raise beta_T" in msg and "ᾱ_T" in msg


# --- figures ----------------------------------------------------------------------------------------------
def test_loss_curve_is_log_with_labelled_axes_and_thinned():
    losses = np.exp(-np.linspace(0, 3, 5000)) + 0.01
    fig = L.fig_loss_curve(losses, "simple")
    assert fig.layout.yaxis.type == "log"
    assert fig.layout.xaxis.title.text == "training step" and "MSE" in fig.layout.yaxis.title.text
    assert len(fig.data[0].x) <= 2001 and fig.data[0].x[-1] == 5000
    assert_no_nan(fig)
    neg = L.fig_loss_curve(np.array([0.5, -0.1, 0.2]), "vlb")
    assert neg.layout.yaxis.type == "linear" and "linear axis" in neg.layout.title.text


def test_smooth_is_a_trailing_mean():
    v = np.arange(10, dtype=float)
    np.testing.assert_allclose(L.smooth(v, 3), [0, 0.5, 1, 2, 3, 4, 5, 6, 7, 8])


def test_bucket_figure_labels_the_bins_of_t():
    assert L.bucket_labels(1000, 10)[:2] == ["t 1–100", "t 101–200"]
    fig = L.fig_bucket_losses([0.9, None, 0.5] + [0.1] * 7, 1000)
    assert list(fig.data[0].x)[:2] == ["t 1–100", "t 201–300"]  # bins without data are left out
    assert fig.layout.xaxis.title.text.startswith("bin of the time step t") and fig.layout.yaxis.type == "log"


def test_snapshot_figures():
    snaps = [(s, np.random.default_rng(s).normal(size=(50, 2)).astype(np.float32)) for s in range(10, 110, 10)]
    assert [s for s, _ in L.pick_snapshots(snaps, 4)] == [10, 40, 70, 100]
    fig = L.fig_snapshots_2d(snaps, np.zeros((20, 2)), k=4)
    assert len(fig.data) == 8 and fig.layout.xaxis.title.text == "x₁" and fig.layout.yaxis.title.text == "x₂"
    assert_no_nan(fig)
    digits = np.zeros((16, 1, 28, 28), np.float32)
    m = tile_images(digits, cols=8)
    assert m.shape == (2 * 30, 8 * 30)
    fig = L.fig_snapshot_digits(digits, 40)
    assert "step 40" in fig.layout.title.text and fig.layout.xaxis.title.text


def test_preview_and_drawing_figures():
    grid = L.candidate_grid()
    fig = L.fig_candidate_grid(grid)
    assert fig.layout.dragmode == "lasso" and fig.layout.xaxis.title.text == "x₁"
    x0 = np.random.default_rng(0).normal(size=(100, 2)).astype(np.float32)
    xt = L.noised_preview(x0, S, 1000, seed=1)
    assert abs(xt.std() - 1) < 0.2  # t = T: (almost) pure noise
    np.testing.assert_allclose(L.noised_preview(x0, S, 0), x0, atol=1e-6)  # t = 0: the data
    fig = L.fig_training_preview(x0, xt, 1000, float(S.alphas_cumprod[1000]))
    assert len(fig.data) == 2 and fig.layout.yaxis.title.text == "x₂"


# --- the page's "Try this" prompts and "What you are looking at", each trained as the page would train it -----
def _train(**choice):
    """Train the lab's recipe for LabChoice(**choice) on the sidebar's default schedule; (trainer, step losses)."""
    from lessons.settings import FrameState, build_schedule
    from toy_models.training import Trainer

    c = L.LabChoice(**{"width": 32, "depth": 2, **choice})  # the page's default width and depth
    recipe, msg = L.build_recipe(c, build_schedule(FrameState()))
    assert msg is None, msg
    trainer = Trainer(recipe, device="cpu", seed=c.seed)
    trainer.run(c.steps)
    return trainer, np.array([h["loss"] for h in trainer.history])


@pytest.mark.slow
def test_try_this_learning_rate_one_jumps_during_warm_up_then_comes_back_down():
    assert "first 50 of 1,000 steps" in L.TRY_THIS[0]
    trainer, losses = _train(lr=1.0, steps=1000)  # the page's default steps
    assert trainer.recipe.lr_warmup == 50
    assert int(np.argmax(losses)) < 50  # the jump is inside the warm-up
    assert losses.max() > 2 * losses[:5].mean()
    assert losses[-50:].mean() < 0.5 * losses.max()  # and it comes back down


@pytest.mark.slow
def test_try_this_objectives_vlb_is_far_noisier_and_hybrid_is_almost_simple():
    """The noise of a loss curve, scale-free: std / mean of the step losses over the second half of training."""
    runs = {obj: _train(objective=obj, steps=200)[1][100:] for obj in ("simple", "vlb", "hybrid")}
    cv = {k: float(v.std() / abs(v.mean())) for k, v in runs.items()}
    assert cv["vlb"] > 10 * cv["simple"]  # "far noisier" (measured: ~5 against ~0.1)
    assert cv["hybrid"] == pytest.approx(cv["simple"], rel=0.3)
    assert runs["hybrid"].mean() == pytest.approx(runs["simple"].mean(), rel=0.1)  # "almost L_simple's"


@pytest.mark.slow
def test_what_you_see_small_t_bar_is_highest_for_l_simple():
    trainer, _ = _train(objective="simple", steps=200)
    buckets = trainer.history[-1]["bucket_losses"]
    assert buckets[0] == max(b for b in buckets if b is not None)


def test_abar_message_does_not_send_the_student_to_raise_T():
    """T no longer moves alpha-bar_T (the betas scale with 1000 / T): the refusal names beta_T only."""
    from lessons.settings import FrameState, build_schedule

    for T in (10, 100, 1000):
        assert L.abar_T_message(build_schedule(FrameState(T=T))) is None  # the default journey ends in noise
    low = build_schedule(FrameState(T=100, beta_T=0.001))
    msg = L.abar_T_message(low)
    assert msg is not None and "Raise beta_T" in msg and "Raise T" not in msg
