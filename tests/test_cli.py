"""Every CLI command end to end (subprocess) on the tiny recipe; bad arguments fail in one line."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


def cli(*args, timeout=240):
    return subprocess.run(
        [sys.executable, "-m", "toy_models", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
    )


def _one_line_failure(r):
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


# --- bad arguments: argparse errors (no heavy imports) and runtime errors -------------------------------
@pytest.mark.parametrize(
    "args, says",
    [
        ((), "required"),
        (("fly",), "invalid choice"),
        (("data", "moons", "--out", "x.npz"), "--n"),
        (("data", "moons", "--n", "0", "--out", "x.npz"), "positive integer"),
        (("sample", "tiny", "--n", "5", "--out", "x.npz", "--sampler", "euler"), "invalid choice"),
        (("sample", "tiny", "--n", "5", "--out", "x.npz", "--guidance", "nan"), "finite"),
        (("train", "tiny", "--device", "tpu"), "invalid choice"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(args, says):
    r = cli(*args)
    assert r.returncode == 2
    assert says in _one_line_failure(r)


@pytest.mark.parametrize(
    "args, says",
    [
        (("train", "no-such-recipe"), "valid names"),
        (("data", "no-such-set", "--n", "5", "--out", "{tmp}/x.npz"), "valid names"),
        (("data", "moons", "--n", "5", "--out", "{tmp}/x.txt"), ".npz"),
        (("sample", "{tmp}/missing.safetensors", "--n", "5", "--out", "{tmp}/x.npz"), "missing"),
    ],
)
def test_runtime_failures_exit_1_with_one_line(tmp_path, args, says):
    r = cli(*[a.format(tmp=tmp_path) for a in args])
    assert r.returncode == 1
    assert says.lower() in _one_line_failure(r).lower()


# --- recipes and data -----------------------------------------------------------------------------------
def test_recipes_lists_every_recipe_with_its_description():
    from toy_models.recipes import RECIPES

    r = cli("recipes")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == len(RECIPES)
    for line, (name, recipe) in zip(lines, RECIPES.items()):
        assert line.split()[0] == name and recipe.description in line


def test_data_2d_matches_sample_2d(tmp_path):
    from toy_models.data import sample_2d

    out = tmp_path / "gmm.npz"
    r = cli("data", "gmm", "--n", 300, "--seed", 4, "--out", out)
    assert r.returncode == 0, r.stderr
    x, y = sample_2d("gmm", 300, seed=4)
    with np.load(out) as z:
        np.testing.assert_array_equal(z["x"], x.numpy())
        np.testing.assert_array_equal(z["y"], y.numpy())


@pytest.mark.slow
def test_data_mnist_images_in_unit_range(tmp_path):
    out = tmp_path / "digits.npz"
    r = cli("data", "mnist", "--n", 50, "--out", out)
    assert r.returncode == 0, r.stderr
    with np.load(out) as z:
        x, y = z["x"], z["y"]
    assert x.shape == (50, 28, 28) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert x.max() == 1.0 and set(np.unique(y)) <= set(range(10))
    assert (x * 255).round() == pytest.approx(x * 255, abs=1e-3)  # 8-bit pixels, rescaled exactly


def test_train_all_order_puts_dependencies_first():
    from toy_models.cli import TEST_RECIPES
    from toy_models.recipes import RECIPES

    r = cli("train-all", "--dry-run")
    assert r.returncode == 0, r.stderr
    order = r.stdout.split()
    assert order[0] == "mnist-judge"
    assert sorted(order[1:]) == sorted(n for n in RECIPES if n not in TEST_RECIPES)
    for name in order[1:]:
        dep = RECIPES[name].init_from
        if dep:
            assert order.index(dep) < order.index(name)


# --- the tiny recipe end to end -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    pytest.importorskip("toy_models.training", reason="toy_models.training has not landed yet")
    pytest.importorskip("toy_models.checkpoints", reason="toy_models.checkpoints has not landed yet")
    out = tmp_path_factory.mktemp("weights")
    r = cli("train", "tiny", "--steps", 60, "--out", out, "--device", "cpu")
    assert r.returncode == 0, r.stderr
    path = out / "tiny.safetensors"
    assert path.exists() and path.with_suffix(".json").exists()
    return path


@pytest.mark.slow
def test_sample_tiny_reproducible(tiny, tmp_path):
    """The CLI's draw is the library's draw with the same seed (so it is reproducible), and seeds differ."""
    import torch

    from toy_models.checkpoints import load_checkpoint
    from toy_models.samplers import sample_ddim

    a = tmp_path / "a.npz"
    r = cli("sample", tiny, "--n", 64, "--sampler", "ddim", "--steps", 10, "--seed", 1, "--out", a)
    assert r.returncode == 0, r.stderr
    xa = np.load(a)["x"]
    assert xa.shape == (64, 2) and xa.dtype == np.float32 and np.isfinite(xa).all()
    loaded = load_checkpoint(str(tiny))
    for seed, same in ((1, True), (2, False)):
        g = torch.Generator().manual_seed(seed)
        x_T = torch.randn(64, 2, generator=g)
        want = sample_ddim(loaded.model, loaded.schedule, x_T, steps=10, generator=g).numpy()
        assert np.allclose(xa, want, rtol=1e-5, atol=1e-6) == same
    r = cli("sample", tiny, "--n", 4, "--label", 1, "--out", a)  # tiny is unconditional
    assert "not class-conditional" in _one_line_failure(r)


@pytest.mark.slow
def test_evaluate_tiny_json_and_write(tiny):
    from toy_models import data, metrics
    from toy_models.cli import FLOOR_DRAWS, HELD_OUT_SEED

    r = cli("evaluate", tiny, "--n", 200, "--seed", 3, "--write")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    parts = res["elbo_terms_bits_per_dim"]
    assert res["elbo_bits_per_dim"] == pytest.approx(parts["prior_L_T"] + parts["sum_L_t_minus_1"] + parts["L_0"])
    assert np.isfinite(res["ode_nll_bits_per_dim"])
    assert res["sliced_wasserstein"] > 0 and res["sw_over_floor"] == pytest.approx(
        res["sliced_wasserstein"] / res["noise_floor"]
    )
    seeds = [HELD_OUT_SEED + 3 + k for k in range(1, FLOOR_DRAWS + 1)]
    floor = metrics.noise_floor(lambda m, s: data.sample_2d("moons", m, seed=s)[0], 200, seeds)
    assert res["noise_floor"] == pytest.approx(floor, rel=1e-12)  # independent recomputation
    side = json.loads(tiny.with_suffix(".json").read_text())
    assert side["metrics"]["sliced_wasserstein"] == pytest.approx(res["sliced_wasserstein"])


@pytest.mark.slow
def test_train_judge_short_run_writes_a_verifiable_checkpoint(tmp_path):
    pytest.importorskip("toy_models.data")
    from toy_models import metrics
    from toy_models.data import load_mnist

    r = cli("train-judge", "--epochs", 1, "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    path = tmp_path / "mnist-judge.safetensors"
    side = json.loads(path.with_suffix(".json").read_text())
    assert side["recipe"]["epochs"] == 1 and side["sha256"] == metrics._sha256(path)
    d = load_mnist()
    acc = metrics.judge_accuracy(d.x_test, d.y_test, judge=metrics.load_judge(path))
    assert acc == pytest.approx(side["metrics"]["test_accuracy"], abs=1e-9) and acc > 0.8


@pytest.mark.slow
def test_sample_conditional_label_and_guidance(tmp_path):
    """--label/--guidance wrap the model in classifier-free guidance: w = 0 is the null label, w = 1 the label."""
    import torch

    from toy_models import checkpoints, training
    from toy_models.samplers import sample_ddim

    recipe = training.resolve_recipe("gmm")
    recipe = recipe.replace(network_config={**recipe.network_config, "width": 32, "n_blocks": 1})
    torch.manual_seed(0)
    net = training.build_model(recipe)
    with torch.no_grad():  # make the label matter (a fresh output layer may be zero)
        for p in net.parameters():
            p.add_(0.1 * torch.randn(p.shape))
    path = checkpoints.save_checkpoint(net, recipe=recipe, path_stem=tmp_path / "gmmc")
    loaded = checkpoints.load_checkpoint(str(path))
    null = recipe.network_config["num_classes"]

    def library(label):
        g = torch.Generator().manual_seed(5)
        x_T = torch.randn(32, 2, generator=g)
        return sample_ddim(loaded.model, loaded.schedule, x_T, steps=8, y=torch.full((32,), label), generator=g).numpy()

    for w, label in ((0, null), (1, 2)):
        out = tmp_path / f"w{w}.npz"
        r = cli("sample", path, "--n", 32, "--steps", 8, "--seed", 5, "--label", 2, "--guidance", w, "--out", out)
        assert r.returncode == 0, r.stderr
        with np.load(out) as z:
            np.testing.assert_allclose(z["x"], library(label), rtol=1e-5, atol=1e-6)
            np.testing.assert_array_equal(z["y"], np.full(32, 2))
    assert not np.allclose(library(null), library(2))  # the two cases really differ
    r = cli("sample", path, "--n", 4, "--label", null, "--out", tmp_path / "x.npz")
    assert f"0..{null - 1}" in _one_line_failure(r)


class DifferentiableExactEps(torch.nn.Module):
    """eps*(x_t, t) = -sqrt(1 - abar) grad log q_t(x_t) for the default mixture, by autograd (so the ODE
    likelihood can differentiate it); an independent stand-in for a perfectly trained 2D model."""

    parameterization = "eps"

    def __init__(self, schedule):
        super().__init__()
        from toy_models.gmm import default_gmm

        self.s, self.gmm = schedule, default_gmm()

    def log_q(self, x, t):
        a = self.s.alpha_bar(t.detach().double().cpu())[:, None]  # (B, 1)
        parts = []
        for k in range(self.gmm.num_components):
            cov = a[:, :, None] * self.gmm.covs[k] + (1 - a)[:, :, None] * torch.eye(2, dtype=torch.float64)
            mvn = torch.distributions.MultivariateNormal(a.sqrt() * self.gmm.means[k], covariance_matrix=cov)
            parts.append(torch.log(self.gmm.weights[k]) + mvn.log_prob(x.double()))
        return torch.logsumexp(torch.stack(parts, 1), 1), a

    def forward(self, x, t, y=None):
        with torch.enable_grad():
            xx = x if x.requires_grad else x.detach().requires_grad_(True)
            lq, a = self.log_q(xx, t)
            (g,) = torch.autograd.grad(lq.sum(), xx, create_graph=x.requires_grad)
        return (-(1 - a).sqrt() * g).to(x.dtype)


@pytest.mark.slow
def test_evaluate_2d_on_the_exact_model_matches_the_ground_truth():
    """With the exact eps*, the ODE NLL equals the true NLL, the ELBO bounds it, and SW sits at the floor."""
    from types import SimpleNamespace

    from toy_models.cli import evaluate_checkpoint
    from toy_models.schedules import make_schedule

    s = make_schedule("linear", 100, beta_start=1e-4, beta_end=0.2)
    loaded = SimpleNamespace(
        model=DifferentiableExactEps(s),
        schedule=s,
        sidecar={},
        recipe={"name": "exact", "kind": "diffusion", "data": "gmm"},
    )
    res = evaluate_checkpoint(loaded, n=300, seed=0)
    assert res["ode_nll_n"] == 300 and res["true_nll_ode_subset_bits_per_dim"] == res["true_nll_bits_per_dim"]
    assert res["ode_nll_bits_per_dim"] == pytest.approx(res["true_nll_bits_per_dim"], abs=0.02)
    assert res["elbo_bits_per_dim"] >= res["true_nll_bits_per_dim"] - 0.02
    assert res["sw_over_floor"] < 1.6
