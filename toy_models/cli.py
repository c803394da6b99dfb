"""The command line: `python -m toy_models COMMAND ...`.

    recipes                               the training recipes, one line each
    train RECIPE [--steps N] [--device D] [--out DIR] [--seed S]
    train-all [--device D] [--out DIR]    every shipped checkpoint, in dependency order (and the judge)
    train-judge [--out DIR]               the independent MNIST judge (metrics.py)
    data NAME --n N [--seed S] --out FILE.npz
    sample CHECKPOINT --n N [--sampler ddpm|ddim|ode] [--steps K] [--label C] [--guidance W] [--seed S]
           --out FILE.npz
    evaluate CHECKPOINT [--n N] [--seed S] [--write]   JSON on stdout

CHECKPOINT is a shipped name (the same as its recipe, e.g. "moons") or a path to a .safetensors file.
Bad arguments exit with status 2 and one line on stderr; a failure while running (a missing
checkpoint, say) exits with status 1 and one line. No tracebacks.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from .recipes import DEVICES

CLI_SAMPLERS = ("ddpm", "ddim", "ode")
DEFAULT_STEPS = {"ddpm": None, "ddim": 50, "ode": 50}  # None: all T steps
TEST_RECIPES = ("tiny",)  # recipes for tests only: not shipped, not in train-all
DEFAULT_GUIDANCE = {"mnist": 2.0}  # data -> default classifier-free guidance scale w (else 1: conditional)
GUIDANCE_TABLE = (0.0, 1.0, 2.0, 3.0)  # the scales of evaluate's small MNIST table
SW_REPEATS = 8  # independent sample sets averaged in the sliced-Wasserstein ratio
FLOOR_DRAWS = 16  # independent data draws whose pairwise SW averages into the noise floor
HELD_OUT_SEED = 10_000  # 2D held-out data is drawn with seed HELD_OUT_SEED + --seed (training uses data_seed)


class CliError(Exception):
    """A failure to report in one line (exit status 1)."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in ONE line (no usage block) and exits with 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive_int(v):
    try:
        n = int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {v!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {v!r}")
    return n


def _finite_float(v):
    try:
        x = float(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number; got {v!r}") from None
    if not math.isfinite(x):
        raise argparse.ArgumentTypeError(f"expected a finite number; got {v!r}")
    return x


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m toy_models", description="Train, sample and evaluate the course's diffusion models.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    sub.add_parser("recipes", help="list the training recipes")

    t = sub.add_parser("train", help="train one recipe and write its checkpoint")
    t.add_argument("recipe", help="a recipe name (see `recipes`)")
    t.add_argument("--steps", type=_positive_int, help="optimisation steps (default: the recipe's)")
    t.add_argument("--device", choices=DEVICES, default="auto")
    t.add_argument("--out", default=None, help="output directory (default: weights/)")
    t.add_argument("--seed", type=int, default=None, help="seed (default: the recipe's)")

    a = sub.add_parser("train-all", help="train every shipped recipe in dependency order, and the judge")
    a.add_argument("--device", choices=DEVICES, default="auto")
    a.add_argument("--out", default=None, help="output directory (default: weights/)")
    a.add_argument("--dry-run", action="store_true", help="print the order and train nothing")

    j = sub.add_parser("train-judge", help="train the independent MNIST judge (weights/mnist-judge.*)")
    j.add_argument("--out", default=None, help="output directory (default: weights/)")
    j.add_argument("--epochs", type=_positive_int, default=None, help="passes over the digits (default: the recipe's)")

    d = sub.add_parser("data", help="write a data set to .npz (x, and y where labelled)")
    d.add_argument("name", help="a 2D data set or 'mnist'")
    d.add_argument("--n", type=_positive_int, required=True)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--out", required=True, help="FILE.npz")

    s = sub.add_parser("sample", help="draw samples from a checkpoint into .npz")
    s.add_argument("checkpoint", help="a shipped name or a .safetensors path")
    s.add_argument("--n", type=_positive_int, required=True, help="how many samples")
    s.add_argument("--sampler", choices=CLI_SAMPLERS, default="ddim")
    s.add_argument("--steps", type=_positive_int, default=None, help="sampler steps (default: ddim/ode 50, ddpm all T)")
    s.add_argument("--label", type=int, default=None, help="class to generate (conditional models)")
    s.add_argument(
        "--guidance",
        type=_finite_float,
        default=None,
        help="classifier-free guidance scale w (0 uncond, 1 cond, >1 sharper; default 2 for "
        "MNIST, else 1); needs --label",
    )
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True, help="FILE.npz")

    e = sub.add_parser("evaluate", help="metrics of a checkpoint as JSON on stdout")
    e.add_argument("checkpoint", help="a shipped name or a .safetensors path")
    e.add_argument(
        "--n", type=_positive_int, default=None, help="samples / held-out examples (default 2000 2D, 200 MNIST)"
    )
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--write", action="store_true", help="store the metrics in the checkpoint's JSON sidecar")
    return p


# --- helpers ----------------------------------------------------------------------------------------
def _progress_bar(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", file=sys.stderr, dynamic_ncols=True)


def _out_dir(out) -> Path:
    from .metrics import WEIGHTS_DIR

    return Path(out) if out else WEIGHTS_DIR


def _check_npz_path(out: str) -> Path:
    path = Path(out)
    if path.suffix != ".npz":
        raise CliError(f"--out must name a .npz file; got {out!r}")
    if not path.parent.exists():
        raise CliError(f"the directory of --out does not exist: {path.parent}")
    return path


def _load(checkpoint: str):
    from . import checkpoints

    try:
        return checkpoints.load_checkpoint(checkpoint)
    except checkpoints.CheckpointError as e:
        raise CliError(str(e)) from None


def _recipe_dict(loaded) -> dict:
    r = loaded.recipe
    return r if isinstance(r, dict) else r.to_dict()


def _null_label(loaded) -> int | None:
    """The null label of a class-conditional model (= num_classes), or None for an unconditional one."""
    r = _recipe_dict(loaded)
    if not r.get("conditional"):
        return None
    n = getattr(loaded.model, "num_classes", None)
    if n is None:
        n = (loaded.sidecar or {}).get("num_classes") or r.get("network_config", {}).get("num_classes")
    return int(n) if n is not None and int(n) > 0 else None


def _generator(seed: int):
    import torch

    return torch.Generator().manual_seed(int(seed))


# --- commands ---------------------------------------------------------------------------------------
def cmd_recipes(args) -> int:
    from .recipes import RECIPES

    width = max(len(k) for k in RECIPES)
    for name, r in RECIPES.items():
        tag = "  [tests only]" if name in TEST_RECIPES else ""
        print(f"{name:<{width}}  {r.description}{tag}")
    return 0


def _train_one(name: str, steps, device: str, out: Path, seed=None) -> Path:
    from .recipes import get_recipe

    try:
        recipe = get_recipe(name)  # before importing torch: a typo fails at once
    except ValueError as e:
        raise CliError(str(e)) from None
    from . import checkpoints, training

    if seed is not None:
        recipe = recipe.replace(seed=int(seed))
    if steps is not None:
        recipe = recipe.replace(steps=int(steps))
    trainer = training.Trainer(recipe, device=device)
    bar = _progress_bar(recipe.steps, f"train {name} ({trainer.device})")

    def on_progress(rec: dict):
        bar.update(1)
        if rec.get("step", 0) % 10 == 0:
            bar.set_postfix(loss=f"{rec['loss']:.4f}", refresh=False)

    start = time.time()
    trainer.run(recipe.steps, callback=on_progress)
    bar.close()
    path = checkpoints.save_checkpoint(trainer, path_stem=out / recipe.name)
    print(f"wrote {path} ({recipe.steps} steps, {time.time() - start:.0f} s)")
    return Path(path)


def cmd_train(args) -> int:
    out = _out_dir(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _train_one(args.recipe, args.steps, args.device, out, args.seed)
    return 0


def training_order(recipes: dict) -> list[str]:
    """Shipped recipe names with every `init_from` dependency before its dependant (stable otherwise)."""
    names = [n for n in recipes if n not in TEST_RECIPES]
    done, order = set(), []

    def visit(n, stack=()):
        if n in done:
            return
        if n in stack:
            raise CliError(f"recipes depend on each other in a cycle: {' -> '.join(stack + (n,))}")
        dep = getattr(recipes[n], "init_from", None)
        if dep in recipes:
            visit(dep, stack + (n,))
        done.add(n)
        order.append(n)

    for n in names:
        visit(n)
    return order


def cmd_train_all(args) -> int:
    from .recipes import RECIPES

    order = training_order(RECIPES)
    if args.dry_run:
        print("\n".join(["mnist-judge"] + order))
        return 0
    out = _out_dir(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _train_judge(out)
    for name in order:
        _train_one(name, None, args.device, out)
    return 0


def _train_judge(out: Path, epochs=None) -> Path:
    import torch

    from . import metrics

    cfg = metrics.JudgeConfig() if epochs is None else metrics.JudgeConfig(epochs=int(epochs))
    bar, threads = None, torch.get_num_threads()

    def progress(step, total, loss):
        nonlocal bar
        if bar is None:
            bar = _progress_bar(total, "train mnist-judge")
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    torch.set_num_threads(1)  # reproducible bit for bit, and polite on a shared machine (~1 min on one core)
    try:
        judge, info = metrics.train_judge(cfg, progress=progress)
    finally:
        torch.set_num_threads(threads)
        if bar is not None:
            bar.close()
    path = metrics.save_judge(judge, info, out)
    print(f"wrote {path} (test accuracy {info['test_accuracy']:.4f} on {info['n_test']} held-out real digits)")
    return path


def cmd_train_judge(args) -> int:
    _train_judge(_out_dir(args.out), args.epochs)
    return 0


def cmd_data(args) -> int:
    from . import data

    path = _check_npz_path(args.out)
    if args.name == "mnist":
        d = data.load_mnist()
        x = np.concatenate([d.x_train.numpy(), d.x_test.numpy()])
        y = np.concatenate([d.y_train.numpy(), d.y_test.numpy()])
        if args.n > len(x):
            raise CliError(f"--n {args.n} exceeds the {len(x)} digits of the {d.source}")
        idx = np.random.default_rng(args.seed).permutation(len(x))[: args.n]
        np.savez(path, x=((x[idx, 0] + 1) / 2).astype(np.float32), y=y[idx])  # images (N, 28, 28) in [0, 1]
    elif args.name in data.DATASETS_2D:
        x, y = data.sample_2d(args.name, args.n, seed=args.seed)
        arrays = {"x": np.asarray(x, np.float32)}
        if y is not None:
            arrays["y"] = np.asarray(y, np.int64)
        np.savez(path, **arrays)
    else:
        raise CliError(f"unknown data set {args.name!r}; valid names: {', '.join(data.DATASETS_2D)}, mnist")
    print(f"wrote {path}")
    return 0


def draw_samples(loaded, n: int, sampler: str = "ddim", steps=None, label=None, guidance=None, seed: int = 0):
    """Samples from a loaded checkpoint: (x in model space, requested labels or None).

    A conditional model is wrapped in ClassifierFreeGuidance (w = `guidance`, default
    DEFAULT_GUIDANCE for its data, else 1) when a label is given, and receives the null label
    (unconditional) otherwise. Images are sampled with x_0 clipped to [-1, 1].
    """
    import torch

    from .guidance import ClassifierFreeGuidance
    from .networks import fast_inference
    from .samplers import SAMPLERS

    r = _recipe_dict(loaded)
    null = _null_label(loaded)
    is_image = r.get("data") == "mnist"
    if guidance is not None and label is None:
        raise CliError("--guidance needs --label (the class to guide toward)")
    model, y = loaded.model, None
    if label is not None:
        if null is None:
            raise CliError(f"checkpoint {r.get('name')!r} is not class-conditional; drop --label")
        if not 0 <= int(label) < null:
            raise CliError(f"--label must lie in 0..{null - 1}; got {label}")
        w = DEFAULT_GUIDANCE.get(r.get("data"), 1.0) if guidance is None else guidance
        model = ClassifierFreeGuidance(loaded.model, w, null)
        y = torch.full((n,), int(label), dtype=torch.long)
    elif null is not None:
        y = torch.full((n,), null, dtype=torch.long)  # the null label: unconditional samples
    g = _generator(seed)
    shape = (n, 1, 28, 28) if is_image else (n, int(r.get("network_config", {}).get("data_dim", 2)))
    x_T = torch.randn(shape, generator=g)
    s = loaded.schedule
    if steps is None and DEFAULT_STEPS[sampler] is not None:
        steps = min(DEFAULT_STEPS[sampler], s.T)
    kw = {"clip_x0": (-1.0, 1.0)} if is_image else {}
    if sampler == "ddpm" and steps not in (None, s.T):
        raise CliError(f"ddpm runs all T = {s.T} steps; drop --steps or use --sampler ddim")
    if steps is not None and steps > s.T:
        raise CliError(f"--steps must be at most T = {s.T}")
    with torch.no_grad(), fast_inference(x_T.device) if is_image else nullcontext():
        x = SAMPLERS[sampler](model, s, x_T, steps=steps, y=y, generator=g, **kw)
    return x, (None if label is None else y)


def cmd_sample(args) -> int:
    path = _check_npz_path(args.out)
    loaded = _load(args.checkpoint)
    x, y = draw_samples(loaded, args.n, args.sampler, args.steps, args.label, args.guidance, args.seed)
    if x.ndim == 4:  # images: (N, 28, 28) in [0, 1]
        arrays = {"x": ((x[:, 0].clamp(-1, 1) + 1) / 2).numpy().astype(np.float32)}
    else:
        arrays = {"x": x.numpy().astype(np.float32)}
    if y is not None:
        arrays["y"] = y.numpy().astype(np.int64)
    np.savez(path, **arrays)
    print(f"wrote {path}")
    return 0


# --- evaluate -----------------------------------------------------------------------------------------
def _bpd(nats, dims: int) -> float:
    """nats per example -> bits per dimension."""
    return float(nats) / (dims * math.log(2.0))


def _elbo_report(loaded, x0, y, data_kind: str, seed: int) -> dict:
    """-ELBO in bits/dim and its three parts (Ho et al. 2020, eq. 5), averaged over the held-out x0."""
    from .elbo import elbo_terms

    terms = elbo_terms(loaded.schedule, loaded.model, x0, y=y, data_kind=data_kind, generator=_generator(seed))
    D = terms.dims
    return {
        "elbo_bits_per_dim": _bpd(terms.total.mean(), D),
        "elbo_terms_bits_per_dim": {
            "prior_L_T": _bpd(terms.prior.mean(), D),
            "sum_L_t_minus_1": _bpd(terms.terms[1:].sum(0).mean(), D),  # t = 2..T
            "L_0": _bpd(terms.terms[0].mean(), D),
        },
        "elbo_n": int(x0.shape[0]),
    }


def evaluate_checkpoint(loaded, n=None, seed: int = 0) -> dict:
    """Every metric of a diffusion checkpoint, as a JSON-ready dict (see `evaluate` in the module docstring)."""
    r = _recipe_dict(loaded)
    if r.get("kind") == "classifier":
        return _evaluate_classifier(loaded, r["data"], n or 2000, seed)
    if r.get("kind") != "diffusion":
        raise CliError(
            f"evaluate needs a diffusion or classifier checkpoint; {r.get('name')!r} is a {r.get('kind')} checkpoint"
        )
    out = {
        "checkpoint": r.get("name"),
        "recipe_steps": r.get("steps"),
        "schedule": loaded.schedule.describe(),
        "seed": seed,
    }
    start = time.time()
    out.update(
        _evaluate_mnist(loaded, n or 200, seed)
        if r.get("data") == "mnist"
        else _evaluate_2d(loaded, r["data"], n or 2000, seed)
    )
    out["evaluate_seconds"] = round(time.time() - start, 1)
    return out


CLASSIFIER_TIMES = (1, 100, 300, 600, 1000)  # t at which a noisy classifier's accuracy is reported


def _evaluate_classifier(loaded, name: str, n: int, seed: int) -> dict:
    """Held-out accuracy of a noisy classifier p(y | x_t, t) at a few t (x_t ~ q(x_t | x_0))."""
    import torch

    from . import data
    from .diffusion import q_sample

    if name == "mnist":
        x0, y = data.load_mnist().x_test, data.load_mnist().y_test
    else:
        x0, y = data.sample_2d(name, n, seed=HELD_OUT_SEED + seed)
    g = _generator(seed)
    acc = {}
    with torch.no_grad():
        for t in CLASSIFIER_TIMES:
            if t > loaded.schedule.T:
                continue
            x_t = q_sample(loaded.schedule, x0.float(), t, generator=g)
            logits = loaded.model(x_t, torch.full((len(x0),), float(t)), None)
            acc[f"accuracy_t{t}"] = float((logits.argmax(1) == y).float().mean())
    return {"checkpoint": _recipe_dict(loaded)["name"], "data": name, "n": int(len(x0)), "seed": seed, **acc}


def _evaluate_2d(loaded, name: str, n: int, seed: int) -> dict:
    import torch

    from . import data, metrics
    from .likelihood import ode_log_likelihood

    x0, _ = data.sample_2d(name, n, seed=HELD_OUT_SEED + seed)  # held-out: training used data_seed
    x0 = x0.float()
    null = _null_label(loaded)
    y = None if null is None else torch.full((n,), null, dtype=torch.long)
    res = {"data": name, "n": n}
    res.update(_elbo_report(loaded, x0, y, "continuous", seed))
    n_ll = min(n, 500)  # the exact-divergence ODE costs ~2 backward passes per evaluation
    ll = ode_log_likelihood(loaded.model, loaded.schedule, x0[:n_ll], y=None if y is None else y[:n_ll])
    res["ode_nll_bits_per_dim"] = float(ll.bits_per_dim.mean())
    res["ode_nll_n"] = n_ll
    if name == "gmm":
        from .gmm import default_gmm

        nll = -default_gmm().log_prob(x0.double())  # (n,) exact -log q(x_0), nats
        res["true_nll_bits_per_dim"] = _bpd(nll.mean(), x0.shape[1])  # on the ELBO's n points
        res["true_nll_ode_subset_bits_per_dim"] = _bpd(nll[:n_ll].mean(), x0.shape[1])  # on the ODE's points
    # SW between two sets of 2,000 points is itself noisy (its spread is ~30% of its mean on the mixture),
    # and so is the floor: average SW over SW_REPEATS independent (samples, held-out data) pairs, and the
    # floor over all pairs of FLOOR_DRAWS data draws. With 4 pairs and a floor from 5 draws, the EXACT
    # mixture model, sampled by the same DDPM, read 1.40-1.55x "the floor" (the floor drew low, 0.040 vs a
    # mean 0.064 over 8 fresh pairs), while at 20,000 points it sits at 0.9x.
    res["sw_floor_draws"] = FLOOR_DRAWS
    sws = []
    for k in range(SW_REPEATS):
        x, _ = draw_samples(loaded, n, "ddpm", seed=seed + k)
        ref = x0 if k == 0 else data.sample_2d(name, n, seed=HELD_OUT_SEED + seed + 100 * k)[0].float()
        sws.append(metrics.sliced_wasserstein(x, ref))
    res["sampler"] = "ddpm"
    res["sliced_wasserstein"] = sum(sws) / len(sws)
    res["sw_repeats"] = SW_REPEATS
    seeds = [HELD_OUT_SEED + seed + k for k in range(1, FLOOR_DRAWS + 1)]
    res["noise_floor"] = metrics.noise_floor(lambda m, sd: data.sample_2d(name, m, seed=sd)[0], n, seeds)
    res["sw_over_floor"] = res["sliced_wasserstein"] / res["noise_floor"]
    return res


def _evaluate_mnist(loaded, n: int, seed: int) -> dict:
    import torch

    from . import data, metrics

    d = data.load_mnist()
    judge = metrics.load_judge()
    null = _null_label(loaded)
    # real reference digits: held-out test digits first (the judge never trained on them)
    real = torch.cat([d.x_test, d.x_train]) if 2 * n > len(d.x_test) else d.x_test
    if 2 * n > len(real):
        raise CliError(f"--n {n} is too large: the floor needs 2n real digits and there are {len(real)}")
    perm = torch.randperm(len(real), generator=_generator(seed))
    f_ref = metrics.judge_features(real[perm[:n]], judge)
    f_other = metrics.judge_features(real[perm[n : 2 * n]], judge)
    res = {
        "data": "mnist",
        "n": n,
        "data_source": d.source,
        "sampler": "ddim",
        "sampler_steps": min(DEFAULT_STEPS["ddim"], loaded.schedule.T),
        "real_reference": "test digits" if len(real) == len(d.x_test) else "test + training digits",
        "fd_real_floor": metrics.frechet_distance(f_other, f_ref),
    }
    if null is not None:
        labels = torch.arange(n) % null
        w_default = DEFAULT_GUIDANCE.get("mnist", 1.0)
        table = []
        for w in sorted(set(GUIDANCE_TABLE) | {w_default}):
            x = _sample_labels(loaded, labels, w, seed)
            fd = metrics.frechet_distance(metrics.judge_features(x, judge), f_ref)
            table.append(
                {
                    "guidance": w,
                    "judge_accuracy": metrics.judge_accuracy(x, labels, judge),
                    "frechet_distance": fd,
                    "fd_over_floor": fd / res["fd_real_floor"],
                }
            )
        best = next(row for row in table if row["guidance"] == w_default)
        res.update(
            {
                "guidance": w_default,
                "judge_accuracy": best["judge_accuracy"],
                "frechet_distance": best["frechet_distance"],
                "fd_over_floor": best["fd_over_floor"],
                "guidance_table": table,
            }
        )
    else:
        x, _ = draw_samples(loaded, n, "ddim", seed=seed)
        res["frechet_distance"] = metrics.frechet_distance(metrics.judge_features(x, judge), f_ref)
        res["fd_over_floor"] = res["frechet_distance"] / res["fd_real_floor"]
    n_elbo = min(n, 16)  # the full sum over T steps of a U-Net: ~1 s per 30 steps
    y = None if null is None else torch.full((n_elbo,), null, dtype=torch.long)
    pick = torch.randperm(len(d.x_test), generator=_generator(seed))[:n_elbo]
    res.update(_elbo_report(loaded, d.x_test[pick], y, "image8bit", seed))
    res["elbo_label"] = "none (unconditional model)" if null is None else f"null label {null} (unconditional)"
    return res


def _sample_labels(loaded, labels, w: float, seed: int):
    """Class-conditional DDIM samples for a (N,) label tensor at guidance scale w (x_0 clipped)."""
    import torch

    from .guidance import ClassifierFreeGuidance
    from .networks import fast_inference
    from .samplers import sample_ddim

    g = _generator(seed)
    x_T = torch.randn((len(labels), 1, 28, 28), generator=g)
    model = ClassifierFreeGuidance(loaded.model, w, _null_label(loaded))
    with torch.no_grad(), fast_inference(x_T.device):
        return sample_ddim(
            model,
            loaded.schedule,
            x_T,
            steps=min(DEFAULT_STEPS["ddim"], loaded.schedule.T),
            y=labels,
            generator=g,
            clip_x0=(-1.0, 1.0),
        )


def cmd_evaluate(args) -> int:
    loaded = _load(args.checkpoint)
    result = evaluate_checkpoint(loaded, n=args.n, seed=args.seed)
    if args.write:
        result["written_to"] = str(_write_metrics(args.checkpoint, result))
    print(json.dumps(result, indent=2))
    return 0


def _write_metrics(checkpoint: str, metrics: dict) -> Path:
    """Merge `metrics` into the checkpoint's JSON sidecar (checkpoints.update_metrics); nothing else changes."""
    from . import checkpoints

    checkpoints.update_metrics(checkpoint, metrics)
    return checkpoints.resolve_paths(checkpoint)[1]


COMMANDS = {
    "recipes": cmd_recipes,
    "train": cmd_train,
    "train-all": cmd_train_all,
    "train-judge": cmd_train_judge,
    "data": cmd_data,
    "sample": cmd_sample,
    "evaluate": cmd_evaluate,
}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (CliError, ValueError, FileNotFoundError, RuntimeError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"python -m toy_models {args.command}: error: {msg}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
