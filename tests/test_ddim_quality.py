"""The command line's default sampler (DDIM, 50 steps) samples the shipped 2D models within 1.3x the
sliced-Wasserstein noise floor, as DDPM does (recipes.py says what it took; `make bench` prints every model)."""

import statistics

import pytest
import torch

from toy_models import data, metrics
from toy_models.checkpoints import load_checkpoint
from toy_models.cli import DEFAULT_STEPS, HELD_OUT_SEED, draw_samples

N, SEEDS, DRAWS = 2000, (0, 1, 2), 7  # the SW of one 2,000-point set spreads by ~30%: 3 x 7 pairs averaged


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["moons", "rings", "checkerboard", "moons-cond"])
def test_cli_default_sampler_is_within_1_3x_the_noise_floor(name):
    ck = load_checkpoint(name)
    d = ck.recipe["data"] if isinstance(ck.recipe, dict) else ck.recipe.data
    refs = [data.sample_2d(d, N, seed=HELD_OUT_SEED + 100 * k)[0].numpy() for k in range(DRAWS)]
    floor = statistics.fmean(
        metrics.sliced_wasserstein(refs[i], refs[j]) for i in range(DRAWS) for j in range(i + 1, DRAWS)
    )
    assert DEFAULT_STEPS["ddim"] == 50
    xs = [draw_samples(ck, N, seed=sd)[0].numpy() for sd in SEEDS]  # the CLI's default: DDIM, 50 steps
    ratio = statistics.fmean(metrics.sliced_wasserstein(x, r) for x in xs for r in refs) / floor
    assert ratio <= 1.3, f"{name}: DDIM 50 samples read {ratio:.2f}x the noise floor"
