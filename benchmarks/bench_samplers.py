"""Sampler figures: 2,000 points through 1,000 DDPM steps (exact GMM model, small MLP), the 2D ODE NLL error,
and 64 MNIST digits with 50 DDIM steps (the command line's `sample`), in bfloat16 where native and in float32."""

from __future__ import annotations

import os
import time

import torch

from benchmarks import median_seconds as _median_s
from benchmarks import sw_over_floor
from toy_models.likelihood import ode_log_likelihood
from toy_models.samplers import SamplerInfo, sample_ddim, sample_ddpm, sample_ode
from toy_models.schedules import make_schedule
from toy_models.shapes import as_timesteps


def _mlp():
    """The shipped two-moons network (the MLP every 2D lesson samples from), in eval mode."""
    from toy_models.checkpoints import load_checkpoint

    ld = load_checkpoint("moons")
    c = ld.model.config
    return ld.model.eval(), (
        f"shipped moons MLP2D width {c.width} x {c.n_blocks} blocks, {c.activation}"
        f"{'' if c.layer_norm else ', no LayerNorm'}"
    )


def _gmm_model(s):
    """The exact model, and a differentiable eps* for the likelihood (AnalyticModel detaches x)."""
    from toy_models.gmm import AnalyticModel, default_gmm

    g = default_gmm()

    class MixtureEps:
        parameterization = "eps"

        def __call__(self, x, t, y=None):
            a = s.alpha_bar(t.to(torch.float64))
            return -(1 - a).sqrt()[:, None] * g.score(x, a)

    return g, AnalyticModel(g, s), MixtureEps()


def run() -> list[str]:
    s = make_schedule("linear", 1000)
    gen = torch.Generator().manual_seed(0)
    x64 = torch.randn(2000, 2, generator=gen, dtype=torch.float64)
    x32 = x64.float()
    g, exact, diffable = _gmm_model(s)
    mlp, mlp_name = _mlp()
    lines = [f"threads: {torch.get_num_threads()}"]
    t_ddpm_gmm = _median_s(lambda: sample_ddpm(exact, s, x64, generator=torch.Generator().manual_seed(1)))
    lines.append(f"DDPM 1000 steps, 2000 pts, exact GMM model (float64): {t_ddpm_gmm:7.2f} s")
    from toy_models.gmm import MixtureEpsModel

    tabulated = MixtureEpsModel(g, s)  # the same eps*, tabulated per t (the reverse-chain lesson's exact model)
    t_ddpm_tab = _median_s(lambda: sample_ddpm(tabulated, s, x32, generator=torch.Generator().manual_seed(1)))
    lines.append(
        f"DDPM 1000 steps, 2000 pts, exact GMM model tabulated (MixtureEpsModel, float32): {t_ddpm_tab:7.2f} s"
    )
    t_ddpm_mlp = _median_s(lambda: sample_ddpm(mlp, s, x32, generator=torch.Generator().manual_seed(1)))
    lines.append(f"DDPM 1000 steps, 2000 pts, {mlp_name} (float32): {t_ddpm_mlp:7.2f} s (target 1 s)")
    ts = [as_timesteps(t, x32.shape[0], dtype=x32.dtype) for t in range(s.T, 0, -1)]
    with torch.no_grad():
        t_net = _median_s(lambda: [mlp(x32, t) for t in ts])
    lines.append(
        f"  of which the network's 1000 calls alone: {t_net:.2f} s ({t_net / t_ddpm_mlp:.0%}); the floor of "
        f"any sampler with this network here"
    )
    t_ddim = _median_s(lambda: sample_ddim(mlp, s, x32, steps=50))
    lines.append(f"DDIM 50 steps, 2000 pts, same MLP: {t_ddim:7.3f} s")
    info = SamplerInfo()
    sample_ode(exact, s, x64, method="dopri5", info=info)
    lines.append(f"dopri5 (rtol=atol=1e-5) sampling, exact GMM model: {info.nfe} model evaluations")
    x0, _ = g.sample(200, torch.Generator().manual_seed(2))
    t0 = time.perf_counter()
    r = ode_log_likelihood(diffable, s, x0)
    dt = time.perf_counter() - t0
    err = (r.log_px - g.log_prob(x0)).abs()
    lines.append(
        f"ODE NLL vs exact log q(x0), 200 GMM points: mean |err| {err.mean():.2e} nats, max {err.max():.2e}, "
        f"{r.nfe} NFE, {dt:.1f} s"
    )
    return lines + _sampler_quality_lines(mlp, s) + shipped_2d_quality_lines() + _mnist_lines()


def _sampler_quality_lines(mlp, s, sets: int = 4, n: int = 2000) -> list[str]:
    """SW / noise floor of the shipped moons network's samples by sampler, on the same `sets` starting points:
    what the ReLU network gives up in deterministic sampling (recipes.py), and why the live-training check
    samples with DDPM (bench_training)."""
    ratio = sw_over_floor("moons", n, sets)
    samplers = {
        "DDIM 50 steps": lambda x, k: sample_ddim(mlp, s, x, steps=50),
        "DDIM 50 steps, uniform grid": lambda x, k: sample_ddim(mlp, s, x, steps=50, grid="uniform"),
        "DDIM 200 steps": lambda x, k: sample_ddim(mlp, s, x, steps=200),
        "DDPM": lambda x, k: sample_ddpm(mlp, s, x, generator=torch.Generator().manual_seed(3)),
    }
    return [
        f"shipped moons samples, SW / noise floor over {sets} x {n:,} points: "
        + ", ".join(f"{name} {ratio(f):.2f}x" for name, f in samplers.items())
    ]


SHIPPED_2D = ("moons", "swissroll", "rings", "checkerboard", "gmm", "moons-cond", "moons-hybrid", "moons-vlb")


def cli_sw_over_floor(name: str, samplers=("ddim", "ddpm"), seeds=(0, 1, 2), draws: int = 7, n: int = 2000) -> dict:
    """SW / noise floor of a shipped 2D model's samples as `python -m toy_models sample NAME --sampler X --seed S`
    draws them (cli.draw_samples: DDIM 50 steps by default, null label for a conditional model): each of the
    `seeds` sample sets against each of `draws` held-out data draws, averaged, over the mean SW between pairs of
    those draws. Also "ddim-uniform": DDIM 50 on the uniform grid from the same starting noise."""
    import statistics

    from toy_models import data, metrics
    from toy_models.checkpoints import load_checkpoint
    from toy_models.cli import HELD_OUT_SEED, _generator, _null_label, _recipe_dict, draw_samples

    ck = load_checkpoint(name)
    d = _recipe_dict(ck)["data"]
    refs = [data.sample_2d(d, n, seed=HELD_OUT_SEED + 100 * k)[0].numpy() for k in range(draws)]
    pairs = [metrics.sliced_wasserstein(refs[i], refs[j]) for i in range(draws) for j in range(i + 1, draws)]
    floor = statistics.fmean(pairs)
    null = _null_label(ck)

    def uniform(sd):
        g = _generator(sd)
        x_T = torch.randn((n, 2), generator=g)
        y = None if null is None else torch.full((n,), null, dtype=torch.long)
        return sample_ddim(ck.model, ck.schedule, x_T, steps=50, y=y, generator=g, grid="uniform")

    out = {}
    for sampler in samplers:
        xs = [uniform(sd) if sampler == "ddim-uniform" else draw_samples(ck, n, sampler, seed=sd)[0] for sd in seeds]
        out[sampler] = statistics.fmean(metrics.sliced_wasserstein(x.numpy(), r) for x in xs for r in refs) / floor
    return out


def shipped_2d_quality_lines(seeds=(0, 1, 2), draws: int = 7) -> list[str]:
    """Every shipped 2D model: SW / floor of the CLI's default sampler (DDIM 50, quadratic grid), of DDIM 50 on the
    uniform grid and of DDPM (target: DDIM 50 within 1.3x, tests/test_ddim_quality.py)."""
    lines = [f"shipped 2D models, SW / noise floor ({len(seeds)} sample sets x {draws} data draws of 2,000 points):"]
    for name in SHIPPED_2D:
        r = cli_sw_over_floor(name, ("ddim", "ddim-uniform", "ddpm"), seeds, draws)
        lines.append(
            f"  {name:13s} DDIM 50 (quadratic) {r['ddim']:.2f}x, DDIM 50 (uniform) {r['ddim-uniform']:.2f}x, "
            f"DDPM {r['ddpm']:.2f}x"
        )
    return lines


def _mnist_lines() -> list[str]:
    """64 digits, 50 DDIM steps, as `python -m toy_models sample mnist --n 64 [--label 3]` draws them."""
    from toy_models.checkpoints import CheckpointError, load_checkpoint
    from toy_models.cli import draw_samples
    from toy_models.networks import bf16_is_native

    try:
        ck = load_checkpoint("mnist")
    except CheckpointError as e:
        return [f"MNIST sampling skipped ({str(e).splitlines()[0][:120]})"]
    n_par = sum(p.numel() for p in ck.model.parameters())
    c = ck.model.config
    lines = [
        f"MNIST U-Net {c.channels}, skips {c.skip}, {c.upsample} ({n_par:,} params); bfloat16 native here: "
        f"{bf16_is_native('cpu')}"
    ]
    old = os.environ.get("COURSE_PRECISION")
    try:
        for precision in ("auto", "fp32"):
            os.environ["COURSE_PRECISION"] = precision
            guided = _median_s(lambda: draw_samples(ck, 64, "ddim", label=3), 3)
            plain = _median_s(lambda: draw_samples(ck, 64, "ddim"), 3)
            lines.append(
                f"64 digits x 50 DDIM steps, COURSE_PRECISION={precision}: {guided:.2f} s class-conditional "
                f"with classifier-free guidance (two evaluations a step), {plain:.2f} s unconditional "
                f"(target 5 s)"
            )
    finally:
        if old is None:
            os.environ.pop("COURSE_PRECISION", None)
        else:
            os.environ["COURSE_PRECISION"] = old
    return lines + [_unet_floor(ck.model)]


def _unet_floor(model) -> str:
    """What the guided 64-digit draw costs in the network's convolutions alone: each Conv2d timed on its own
    input at batch 128 (64 digits, two evaluations a step), times 50 steps. No sampler with this network can
    be faster here; the rest (norms, activations, attention, the sampler) comes on top."""
    inputs, total, hooks = [], [0], []

    def record(conv, args, out):  # each conv's input, and its multiply-adds: one per output and kernel weight
        inputs.append((conv, args[0]))
        total[0] += out.numel() * conv.in_channels // conv.groups * conv.kernel_size[0] * conv.kernel_size[1]

    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            hooks.append(m.register_forward_hook(record))
    c = model.config
    try:
        with torch.no_grad():
            model(
                torch.randn(128, c.in_channels, c.image_size, c.image_size),
                torch.full((128,), 500.0),
                torch.zeros(128, dtype=torch.long) if c.num_classes else None,
            )
    finally:
        for h in hooks:
            h.remove()
    macs = total[0] / 128  # per digit
    with torch.no_grad():
        per_eval = _median_s(lambda: [conv(x) for conv, x in inputs], 5)
    return (
        f"  floor: the network's {len(inputs)} convolutions ({macs / 1e6:.1f} M multiply-adds per digit) take "
        f"{per_eval * 1e3:.0f} ms per evaluation of 128 images here ({macs * 128 / per_eval / 1e9:.0f} G "
        f"multiply-adds/s, float32), so 64 guided digits x 50 steps spend {50 * per_eval:.1f} s in them alone"
    )
