"""How good are the samples? Distances between sample sets, and an independent MNIST judge.

Two-dimensional toys
    `sliced_wasserstein(a, b)`  SW_2: the 1D Wasserstein-2 distance of the projections onto random
                                unit directions, root-mean-squared over the directions
                                (Rabin et al. 2011; Bonneel et al. 2015).
    `noise_floor(sample_fn, n)` the SW_2 between two independent draws of n points from the data
                                itself: a model cannot be told apart from the data below it.

MNIST digits
    The *judge* is a small CNN trained on REAL training digits only (never on model samples) and
    scored on the held-out test split. It answers two questions about generated digits:
    `judge_accuracy(images, labels)` - does a digit look like the class that was asked for? - and,
    through `judge_features` (its penultimate layer) and `frechet_distance`, how far the set of
    samples is from the set of real digits (the Frechet distance of Heusel et al. 2017, "FID",
    computed in the judge's feature space instead of Inception's). `real_floor_fd` gives the
    real-vs-real floor: the same distance between two disjoint halves of real digits.

Images given to the judge are model-space tensors in [-1, 1], shaped (N, 1, 28, 28) or (N, 28, 28).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
JUDGE_NAME = "mnist-judge"


# --- 2D: sliced Wasserstein ---------------------------------------------------------------------
def _as_2d_array(x, name: str) -> np.ndarray:
    x = x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)
    x = x.astype(np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"{name} must be a (N, D) array of points with N >= 1; got shape {x.shape}")
    return x


def random_directions(n_projections: int, dim: int, seed: int = 0) -> np.ndarray:
    """(n_projections, dim) unit vectors, uniform on the sphere (normalised Gaussians)."""
    if int(n_projections) < 1:
        raise ValueError(f"n_projections must be a positive integer; got {n_projections}")
    g = np.random.default_rng(seed).standard_normal((int(n_projections), dim))
    return g / np.linalg.norm(g, axis=1, keepdims=True)


def wasserstein_1d(u: np.ndarray, v: np.ndarray, p: int = 2) -> np.ndarray:
    """W_p^p between empirical 1D distributions, column by column: int_0^1 |F_u^-1 - F_v^-1|^p.

    u: (N, P), v: (M, P). With N == M this is the mean of |sorted u - sorted v|^p; otherwise
    both quantile functions are evaluated on the merged grid of their jump points (exact).
    Returns (P,) W_p^p.
    """
    u, v = np.sort(u, axis=0), np.sort(v, axis=0)
    if u.shape[0] == v.shape[0]:
        return np.mean(np.abs(u - v) ** p, axis=0)
    n, m = u.shape[0], v.shape[0]
    levels = np.union1d(np.arange(1, n + 1) / n, np.arange(1, m + 1) / m)  # right ends of pieces
    widths = np.diff(np.concatenate([[0.0], levels]))
    mid = levels - widths / 2
    iu = np.minimum((mid * n).astype(int), n - 1)
    iv = np.minimum((mid * m).astype(int), m - 1)
    return (widths[:, None] * np.abs(u[iu] - v[iv]) ** p).sum(0)


def sliced_wasserstein(a, b, n_projections: int = 512, seed: int = 0, p: int = 2) -> float:
    """Sliced Wasserstein distance SW_p(a, b) = ( E_theta W_p^p(theta . a, theta . b) )^(1/p).

    Rabin, Peyre, Delon & Bernot (2011); Bonneel et al. (2015), eq. 3. theta runs over
    `n_projections` random unit directions (fixed by `seed`, so two calls with the same seed
    compare like with like); the default p = 2 is SW_2, in the data's units. For a set and its
    copy shifted by c, SW_2 = |c| sqrt(mean_theta cos^2) -> |c| / sqrt(D).

    a: (N, D), b: (M, D) points (numpy or torch). Returns a float.
    """
    if p not in (1, 2):
        raise ValueError(f"p must be 1 or 2; got {p!r}")
    a, b = _as_2d_array(a, "a"), _as_2d_array(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must have the same dimension; got {a.shape[1]} and {b.shape[1]}")
    theta = random_directions(n_projections, a.shape[1], seed)  # (P, D)
    wpp = wasserstein_1d(a @ theta.T, b @ theta.T, p)  # (P,)
    return float(np.mean(wpp) ** (1.0 / p))


def noise_floor(sample_fn, n: int, seeds=(1, 2, 3, 4), n_projections: int = 512, seed: int = 0) -> float:
    """The SW_2 between two independent draws of n points from the data, averaged over pairs.

    sample_fn(n, seed) -> (n, D) points of the data. One draw is made per entry of `seeds`
    (they must be distinct) and the distance is averaged over all pairs of draws. A model whose
    samples sit at this distance from a fresh data draw is as close as finite n can show.
    """
    seeds = list(seeds)
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must hold at least two distinct seeds; got {seeds}")
    draws = [_as_2d_array(sample_fn(n, s), "sample_fn output") for s in seeds]
    d = [
        sliced_wasserstein(draws[i], draws[j], n_projections, seed)
        for i in range(len(draws))
        for j in range(i + 1, len(draws))
    ]
    return float(np.mean(d))


# --- Frechet distance ------------------------------------------------------------------------------
def frechet_distance_gaussians(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """d^2 = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))  (Dowson & Landau 1982; Heusel et al. 2017).

    The squared 2-Wasserstein distance between N(mu1, S1) and N(mu2, S2). scipy's sqrtm may
    return tiny imaginary parts from rounding; they are dropped (an error if they are large),
    and a near-singular product is regularised with eps * I as in pytorch-fid.
    """
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shapes do not match: mu {mu1.shape}, {mu2.shape}; sigma {s1.shape}, {s2.shape}")
    with warnings.catch_warnings():  # singular products (fewer samples than features) are handled here
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(s1 @ s2)
        if not np.isfinite(covmean).all():
            offset = np.eye(s1.shape[0]) * eps
            covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        if np.abs(covmean.imag).max() > 1e-3 * max(1.0, np.abs(covmean.real).max()):
            raise ValueError(f"sqrtm(S1 S2) has a large imaginary part ({np.abs(covmean.imag).max():.3g})")
        covmean = covmean.real
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean), 0.0))


def frechet_distance(feats_a, feats_b) -> float:
    """Frechet distance between the Gaussians fitted to two feature sets (N, F) and (M, F).

    Heusel et al. (2017), eq. 6, with the judge's features in place of Inception's.
    """
    a, b = _as_2d_array(feats_a, "feats_a"), _as_2d_array(feats_b, "feats_b")
    if a.shape[0] < 2 or b.shape[0] < 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need two (N, F) feature sets with N >= 2 and equal F; got {a.shape} and {b.shape}")
    return frechet_distance_gaussians(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


# --- the MNIST judge -------------------------------------------------------------------------------
@dataclass
class JudgeConfig:
    """The judge's recipe: a small CNN trained on real training digits only."""

    channels: tuple = (32, 64)  # conv widths of the two 3x3 conv + 2x2 max-pool blocks
    features: int = 128  # width of the penultimate layer (the feature space of the Frechet distance)
    epochs: int = 15  # passes over the real training digits
    dropout: float = 0.3  # dropout on the penultimate features while training
    batch_size: int = 64  # digits per step
    lr: float = 1e-3  # Adam learning rate, decayed to 0 by a cosine over the run
    seed: int = 0  # weight initialisation and shuffling


class MnistJudge(nn.Module):
    """conv(32) - pool - conv(64) - pool - fc(128) [features] - fc(10) [logits], on 28x28 in [-1, 1]."""

    def __init__(self, config: JudgeConfig = JudgeConfig()):
        super().__init__()
        c1, c2 = config.channels
        self.config = config
        self.body = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, c1, 14, 14)
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, c2, 7, 7)
            nn.Flatten(),
            nn.Linear(c2 * 49, config.features),
            nn.ReLU(),  # (B, features)
        )
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(config.features, 10))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def _as_images(images) -> torch.Tensor:
    """(N, 28, 28) or (N, 1, 28, 28), numpy or torch -> float32 (N, 1, 28, 28)."""
    x = torch.as_tensor(np.asarray(images) if not torch.is_tensor(images) else images).float()
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or tuple(x.shape[1:]) != (1, 28, 28):
        raise ValueError(f"images must be (N, 28, 28) or (N, 1, 28, 28) in [-1, 1]; got shape {tuple(x.shape)}")
    return x


def _batched(fn, x: torch.Tensor, batch: int = 500) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([fn(x[i : i + batch]) for i in range(0, x.shape[0], batch)]) if len(x) else fn(x)


def train_judge(config: JudgeConfig = JudgeConfig(), data=None, progress=None):
    """Train the judge on the real training digits of `data` (default toy_models.data.load_mnist()).

    progress: optional callable(step, total_steps, loss). Returns (judge, info dict).
    """
    if data is None:
        from .data import load_mnist

        data = load_mnist()
    torch.manual_seed(config.seed)
    judge = MnistJudge(config)
    opt = torch.optim.Adam(judge.parameters(), lr=config.lr)
    x, y = _as_images(data.x_train), torch.as_tensor(data.y_train).long()
    g = torch.Generator().manual_seed(config.seed)
    steps_per_epoch = math.ceil(len(x) / config.batch_size)
    total, step, start = config.epochs * steps_per_epoch, 0, time.time()
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.5 * (1 + math.cos(math.pi * k / total)))
    judge.train()
    for _ in range(config.epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), config.batch_size):
            idx = perm[i : i + config.batch_size]
            loss = nn.functional.cross_entropy(judge(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if progress is not None:
                progress(step, total, loss.item())
    judge.eval()
    acc = judge_accuracy(data.x_test, data.y_test, judge=judge)
    info = {
        "test_accuracy": acc,
        "n_train": len(x),
        "n_test": len(data.y_test),
        "data_source": getattr(data, "source", "unknown"),
        "train_seconds": round(time.time() - start, 1),
    }
    return judge, info


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save_judge(judge: MnistJudge, info: dict, out_dir=WEIGHTS_DIR) -> Path:
    """Write <out_dir>/mnist-judge.safetensors and its JSON sidecar (recipe, sha256, test accuracy)."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{JUDGE_NAME}.safetensors"
    save_file({k: v.contiguous() for k, v in judge.state_dict().items()}, str(path))
    path.chmod(0o644)  # safetensors creates 0600 files; shipped weights are world-readable
    cfg = asdict(judge.config)
    sidecar = {
        "name": JUDGE_NAME,
        "kind": "mnist-judge",
        "description": "independent MNIST classifier trained on real training digits only",
        "recipe": cfg,
        "metrics": info,
        "sha256": _sha256(path),
        "reproduce": "python -m toy_models train-judge",
    }
    path.with_suffix(".json").write_text(json.dumps(sidecar, indent=2) + "\n")
    return path


class JudgeError(RuntimeError):
    """The judge's weights are missing, corrupt or of the wrong shape."""


def load_judge(path=None) -> MnistJudge:
    """Load the judge from weights/mnist-judge.safetensors (no pickle), checking its sha256."""
    return _load_judge_cached(str(Path(path) if path else WEIGHTS_DIR / f"{JUDGE_NAME}.safetensors"))


@lru_cache(maxsize=4)
def _load_judge_cached(path: str) -> MnistJudge:
    from safetensors.torch import load_file

    path = Path(path)
    fix = "rebuild it with `python -m toy_models train-judge`"
    side = path.with_suffix(".json")
    if not path.exists() or not side.exists():
        raise JudgeError(f"the MNIST judge is missing ({path} and {side.name}); {fix}")
    try:
        meta = json.loads(side.read_text())
        cfg = JudgeConfig(**{**meta["recipe"], "channels": tuple(meta["recipe"]["channels"])})
    except (ValueError, KeyError, TypeError) as e:
        raise JudgeError(f"the judge sidecar {side} is unreadable ({e}); {fix}") from None
    if meta.get("sha256") != _sha256(path):
        raise JudgeError(f"the judge weights {path} do not match the sha256 in {side.name} (corrupt?); {fix}")
    judge = MnistJudge(cfg)
    try:
        judge.load_state_dict(load_file(str(path)))
    except (RuntimeError, OSError) as e:
        raise JudgeError(f"the judge weights {path} do not fit the recipe ({str(e).splitlines()[0]}); {fix}") from None
    return judge.eval()


def judge_logits(images, judge: MnistJudge | None = None) -> torch.Tensor:
    """(N, 10) logits of the judge for images in [-1, 1]."""
    judge = judge or load_judge()
    return _batched(judge, _as_images(images))


def judge_accuracy(images, labels, judge: MnistJudge | None = None) -> float:
    """Fraction of images that the judge assigns to the given label (e.g. the requested class)."""
    labels = torch.as_tensor(np.asarray(labels) if not torch.is_tensor(labels) else labels).long().flatten()
    logits = judge_logits(images, judge)
    if labels.shape[0] != logits.shape[0]:
        raise ValueError(f"got {logits.shape[0]} images but {labels.shape[0]} labels")
    return float((logits.argmax(1) == labels).double().mean())


def judge_features(images, judge: MnistJudge | None = None) -> np.ndarray:
    """(N, 128) penultimate-layer features of the judge, float64 numpy, for the Frechet distance."""
    judge = judge or load_judge()
    return _batched(judge.features, _as_images(images)).double().numpy()


def real_floor_fd(real_images, n: int, seed: int = 0, judge: MnistJudge | None = None) -> float:
    """The real-vs-real floor: Frechet distance between two disjoint random halves of n real digits each.

    A sample set of size n compared with n real digits cannot be expected to beat this.
    """
    x = _as_images(real_images)
    if 2 * n > len(x):
        raise ValueError(f"need at least 2n = {2 * n} real digits for the floor; have {len(x)}")
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    f = judge_features(x[perm[: 2 * n]], judge)
    return frechet_distance(f[:n], f[n:])
