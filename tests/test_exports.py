"""Exports: GIFs decode to the requested frames and size, points and pixels land where they should,
.npz round-trips exactly, limits hold; every page offers its download buttons and their data decodes."""

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from course import exports as E
from lessons.figures import COLORS

ROOT = Path(__file__).resolve().parents[1]


def decode(gif: bytes) -> list[np.ndarray]:
    """Every frame of a GIF as an RGB array."""
    im = Image.open(io.BytesIO(gif))
    assert im.format == "GIF"
    out = []
    for i in range(im.n_frames):
        im.seek(i)
        out.append(np.array(im.convert("RGB")))
    return out


def in_box(img, box):
    """The data area of a frame (the legend below repeats the colours)."""
    return img[box.top : box.top + box.size, box.left : box.left + box.size]


def hits(img, box, color):
    """(row, column) frame pixels of exactly `color` inside the data area."""
    return (np.argwhere((in_box(img, box) == color).all(-1)) + [box.top, box.left]).tolist()


def rgb(hex_color):
    return tuple(int(hex_color.lstrip("#")[i : i + 2], 16) for i in (0, 2, 4))


# --- png config --------------------------------------------------------------------------------
def test_png_config_names_the_file_after_the_key():
    c = E.png_config("fig_xt")
    assert c["toImageButtonOptions"] == {"format": "png", "scale": 2, "filename": "fig_xt"}
    assert E.png_config("fig {a b}/c")["toImageButtonOptions"]["filename"] == "fig_a_b_c"


# --- point GIFs ------------------------------------------------------------------------------------
def test_point_gif_has_the_frames_and_size_asked():
    frames = np.zeros((5, 3, 2))
    gif = E.gif_from_points(frames, [f"t = {i}" for i in range(5)], size=200)
    box = E.plot_box(4.0, 200)
    got = decode(gif)
    assert len(got) == 5
    assert got[0].shape == (box.height, box.width, 3)


def test_a_point_lands_on_the_expected_pixel():
    """Axis mapping: (0, 0) at the centre of the data area, (+h, +h) at its top-right corner,
    and (1, -2) at the pixel computed by hand."""
    size, h = 201, 4.0  # 201 pixels: 200 intervals over 8 units = 25 pixels per unit
    box = E.plot_box(h, size)
    pts = np.array([[[0.0, 0.0]], [[h, h]], [[1.0, -2.0]]])
    frames = decode(E.gif_from_points(pts, ["a", "b", "c"], size=size, radius=0))
    blue = rgb(COLORS["x_t"])
    expected = [(box.left + 100, box.top + 100), (box.left + 200, box.top), (box.left + 125, box.top + 150)]
    for img, (col, row) in zip(frames, expected):
        found = hits(img, box, blue)
        assert found == [[row, col]], f"expected the point at (row {row}, col {col}); found {found}"


def test_points_outside_the_range_are_clipped_not_drawn_and_nan_is_skipped():
    box = E.plot_box(2.0, 120)
    pts = np.array([[[10.0, 0.0], [np.nan, 0.0], [0.0, 0.0]]])
    img = decode(E.gif_from_points(pts, ["x"], half_width=2.0, size=120, radius=0))[0]
    assert hits(img, box, rgb(COLORS["x_t"])) == [[box.top + 60, box.left + 60]]  # 119 * 0.5 = 59.5 rounds to 60


def test_title_is_drawn_and_differs_between_frames():
    frames = decode(E.gif_from_points(np.zeros((2, 1, 2)), ["t = 1, ᾱ_t = 0.99", "t = 900, ᾱ_t = 0.01"], size=150))
    band = slice(0, E.plot_box(4.0, 150).top - 2)
    dark = [(f[band] < 100).all(-1).sum() for f in frames]
    assert min(dark) > 20  # text pixels in the title band
    assert not np.array_equal(frames[0][band], frames[1][band])


def test_backdrop_extra_cloud_and_trails():
    F = 4
    main = np.stack([np.full((2, 2), v) for v in (-1.0, -0.5, 0.0, 0.5)])  # both particles move together
    px0 = np.full((F, 2, 2), 2.0)
    gif = E.gif_from_points(
        main, None, extra={"predicted x̂_0": px0}, backdrop=np.array([[-3.0, 3.0]]), trails=[0], size=160, radius=0
    )
    frames = decode(gif)
    box = E.plot_box(4.0, 160)
    red = rgb(COLORS["pred_x0"])
    col, row = box.to_pixel([[2.0, 2.0]])[0]
    assert (frames[0][row, col] == red).all()
    bc, br = box.to_pixel([[-3.0, 3.0]])[0]
    assert (frames[-1][br, bc] > 150).all() and not (frames[-1][br, bc] == 255).all()  # faint grey
    # the trail of particle 0 joins its first and current positions: a pixel midway is coloured
    mc, mr = box.to_pixel([[-0.25, -0.25]])[0]
    assert not (frames[-1][mr, mc] == 255).all()
    assert (frames[0][mr, mc] >= 200).all()  # not yet at frame 0


def test_too_many_frames_are_subsampled_keeping_first_and_last():
    idx = E.frame_indices(1001, 60)
    assert len(idx) == 60 and idx[0] == 0 and idx[-1] == 1000
    frames = np.zeros((150, 1, 2))
    frames[:, 0, 0] = np.linspace(-3, 3, 150)
    got = decode(E.gif_from_points(frames, [str(i) for i in range(150)], size=100, max_frames=10, radius=0))
    assert len(got) == 10
    box = E.plot_box(4.0, 100)
    blue = rgb(COLORS["x_t"])
    assert hits(got[-1], box, blue) == [box.to_pixel([[3.0, 0.0]])[0, ::-1].tolist()]  # the last state, drawn last


def test_byte_cap_reduces_frames():
    rng = np.random.default_rng(0)
    frames = rng.normal(size=(40, 2000, 2))
    full = E.gif_from_points(frames, None, size=200)
    capped = E.gif_from_points(frames, None, size=200, max_bytes=len(full) // 3)
    assert len(capped) <= len(full) // 3
    assert 2 <= len(decode(capped)) < 40


@pytest.mark.parametrize(
    "bad, msg", [(np.zeros((3, 2)), "shape"), (np.zeros((2, 3, 3)), "shape"), (np.zeros((0, 3, 2)), "empty")]
)
def test_bad_point_shapes_raise_with_a_message(bad, msg):
    with pytest.raises(ValueError, match=msg):
        E.gif_from_points(bad)


def test_wrong_title_count_and_bad_trails_raise():
    with pytest.raises(ValueError, match="one title per frame"):
        E.gif_from_points(np.zeros((3, 2, 2)), ["only one"])
    with pytest.raises(ValueError, match="trail particles"):
        E.gif_from_points(np.zeros((3, 2, 2)), trails=[5])
    with pytest.raises(ValueError, match="one state per frame"):
        E.gif_from_points(np.zeros((3, 2, 2)), extra={"x̂_0": np.zeros((2, 2, 2))})


# --- image GIFs ----------------------------------------------------------------------------------
def test_image_gif_puts_bright_pixels_where_they_are():
    img = np.full((3, 28, 28), -1.0, dtype=np.float32)  # black, in [-1, 1]
    img[0, 5, 20] = 1.0  # one white pixel, frame 0
    img[2, 27, 0] = 1.0  # bottom-left corner, last frame
    lay = E.image_layout(28, 28, 1, scale=3)
    frames = decode(E.gif_from_images(img, ["a", "b", "c"], scale=3))
    assert len(frames) == 3 and frames[0].shape[:2] == (lay.height, lay.width)
    r0, c0 = lay.origin(0)
    tile = frames[0][r0 : r0 + 84, c0 : c0 + 84, 0]
    assert np.argwhere(tile > 200).tolist() == [[5 * 3 + i, 20 * 3 + j] for i in range(3) for j in range(3)]
    assert (frames[1][r0 : r0 + 84, c0 : c0 + 84] < 50).all()
    assert frames[2][r0 + 27 * 3 + 1, c0 + 1, 0] > 200


def test_image_grid_layout_and_value_ranges():
    x = np.zeros((2, 4, 28, 28), dtype=np.float32)  # [0, 1] images: all black ...
    x[:, 3] = 1.0  # ... but tile 3 is white
    lay = E.image_layout(28, 28, 4, cols=2, scale=2)
    f = decode(E.gif_from_images(x, ["one", "two"], cols=2, scale=2))[0]
    for k in range(4):
        r, c = lay.origin(k)
        v = f[r + 10, c + 10, 0]
        assert (v > 200) if k == 3 else (v < 50), f"tile {k}"
    u8 = np.full((1, 28, 28), 255, dtype=np.uint8)  # uint8 white
    assert decode(E.gif_from_images(u8, ["w"], scale=1))[0][E.image_layout(28, 28, scale=1).origin(0)][0] > 200


def test_image_gif_limits_and_bad_shapes():
    rng = np.random.default_rng(1)
    noise = rng.uniform(-1, 1, size=(100, 8, 28, 28)).astype(np.float32)
    gif = E.gif_from_images(noise, None, max_bytes=500_000)
    assert len(gif) <= 500_000
    assert len(decode(gif)) <= E.MAX_FRAMES
    with pytest.raises(ValueError, match="shape"):
        E.gif_from_images(np.zeros((28, 28)))
    with pytest.raises(ValueError, match="one title per frame"):
        E.gif_from_images(np.zeros((2, 28, 28)), ["a"])


# --- npz --------------------------------------------------------------------------------------------
def test_npz_round_trips_exactly():
    rng = np.random.default_rng(2)
    arrays = dict(
        samples=rng.normal(size=(50, 2)).astype(np.float32),
        labels=np.arange(50) % 3,
        images=rng.integers(0, 255, size=(4, 28, 28), dtype=np.uint8),
        scale=np.float64(2.5),
        method=np.str_("replacement"),
        mask=rng.random((28, 28)) > 0.5,
    )
    with np.load(io.BytesIO(E.npz_bytes(**arrays)), allow_pickle=False) as z:
        assert sorted(z.files) == sorted(arrays)
        for k, v in arrays.items():
            assert z[k].dtype == np.asarray(v).dtype and np.array_equal(z[k], v), k


def test_npz_refuses_nothing_and_objects():
    with pytest.raises(ValueError, match="at least one"):
        E.npz_bytes()
    with pytest.raises(ValueError, match="objects"):
        E.npz_bytes(bad=np.array([{"a": 1}], dtype=object))


# --- pages: the buttons are there and their data decodes (AppTest) -----------------------------------
TIMEOUT = 180  # pages that run chains: generous
SMALL = {"T": "50"}  # a short chain keeps each page quick; every export path still runs


@pytest.fixture
def deferred(monkeypatch):
    """Capture every download button's deferred callable: {file_id: (file name, callable)}."""
    from streamlit.runtime.media_file_manager import MediaFileManager

    seen = {}
    original = MediaFileManager.add_deferred

    def add_deferred(self, data_callable, mimetype, coordinates, file_name=None, **kw):
        file_id = original(self, data_callable, mimetype, coordinates, file_name, **kw)
        seen[file_id] = (file_name, data_callable)
        return file_id

    monkeypatch.setattr(MediaFileManager, "add_deferred", add_deferred)
    return seen


def run_page(page: str, params=SMALL, setup=None):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "views" / f"{page}.py"), default_timeout=TIMEOUT)
    at.query_params.update(params)
    at.run()
    if setup:
        setup(at)
    assert not at.exception, [e.value for e in at.exception]
    return at


def downloads(at, deferred) -> dict:
    """{label: (file name, bytes)} of every download button on the page, its data built as a click would."""
    out = {}
    for b in at.get("download_button"):
        file_name, make = deferred[b.proto.deferred_file_id]
        data = make()
        assert isinstance(data, bytes) and data, b.label
        out[b.label] = (file_name, data)
    return out


def gif_frames(data: bytes) -> int:
    im = Image.open(io.BytesIO(data))
    assert im.format == "GIF"
    assert len(data) <= E.MAX_BYTES
    return im.n_frames


def npz(data: bytes) -> dict:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.slow
def test_forward_page_offers_the_animation_and_the_chains_as_gifs(deferred):
    def open_play(at):
        at.session_state["forward_play"] = True  # the play section is sent once opened
        at.run()

    at = run_page("forward", setup=open_play)
    d = downloads(at, deferred)
    assert set(d) == {"the animation as a GIF", "the chains as a GIF"}
    name, gif = d["the animation as a GIF"]
    assert name.endswith(".gif") and "T50" in name
    from lessons.forward import animation_times

    assert gif_frames(gif) == len(animation_times(50, 24))
    assert 2 <= gif_frames(d["the chains as a GIF"][1]) <= E.MAX_FRAMES
    import json

    names = [json.loads(c.proto.config)["toImageButtonOptions"]["filename"] for c in at.get("plotly_chart")]
    assert len(names) >= 5 and "fig_anim" in names and len(set(names)) == len(names)  # every chart: its own PNG name


@pytest.mark.slow
def test_reverse_chain_page_offers_chains_as_gifs_and_samples_as_npz(deferred):
    def open_sections(at):
        at.session_state["rc_play"] = True  # the animations' section, sent once opened
        at.run()

    # a link that sets the digits' DDIM steps opens their section
    at = run_page("reverse_chain", {**SMALL, "particles": "500", "ddim": "20"}, setup=open_sections)
    d = downloads(at, deferred)
    assert {"the exact chain as a GIF", "the samples x_0 as .npz", "the digits as .npz"} <= set(d)
    assert 2 <= gif_frames(d["the exact chain as a GIF"][1]) <= E.MAX_FRAMES
    z = npz(d["the samples x_0 as .npz"][1])
    assert z["exact_x0"].shape == (500, 2) and np.isfinite(z["exact_x0"]).all()
    if "the learned chain as a GIF" in d:  # shipped 2D weights present
        assert gif_frames(d["the learned chain as a GIF"][1]) >= 2
        assert z["learned_x0"].shape == (500, 2)
    digits = npz(d["the digits as .npz"][1])
    imgs = digits["ddim_images"]
    assert imgs.shape == (8, 28, 28) and imgs.min() >= -1 and imgs.max() <= 1
    assert "labels" not in digits  # drawn without a label (the null label)
    (label,) = [k for k in d if k.endswith("chain as a GIF") and k.startswith("the DDIM")]
    im = Image.open(io.BytesIO(d[label][1]))
    assert im.n_frames >= 2 and im.size[0] >= 8 * 28  # a row of 8 digits, upscaled


@pytest.mark.slow
def test_score_page_offers_langevin_and_flow_paths_as_gifs(deferred):
    def press(at):
        at.button(key="score_run_langevin").click().run()
        at.button(key="score_run_flow").click().run()

    at = run_page("score", {**SMALL, "levels": "20", "each": "2"}, setup=press)
    d = downloads(at, deferred)
    assert {"the particles' paths as a GIF", "the ODE flow as a GIF", "the DDPM flow as a GIF"} <= set(d)
    for label in ("the particles' paths as a GIF", "the ODE flow as a GIF", "the DDPM flow as a GIF"):
        assert 2 <= gif_frames(d[label][1]) <= E.MAX_FRAMES, label


@pytest.mark.slow
def test_conditional_page_offers_samples_with_labels_and_scales(deferred):
    at = run_page("conditional", {**SMALL, "steps": "10", "y": "1", "cg_s": "2.5", "w": "4"})
    d = downloads(at, deferred)
    z = npz(d["the 2D samples as .npz"][1])
    assert z["label_samples"].shape == z["cg_samples"].shape == z["cfg_samples"].shape == (300, 2)
    assert int(z["label_y"]) == 1 and int(z["cfg_y"]) == 1
    assert float(z["cg_scale"]) == 2.5 and float(z["cfg_w"]) == 4.0
    assert not np.array_equal(z["cfg_samples"], z["label_samples"])  # guidance changed them
    if "the digits as .npz" in d:  # the shipped MNIST model is present
        digits = npz(d["the digits as .npz"][1])
        assert digits["cfg_images"].shape == (16, 28, 28) and digits["labels"].tolist() == [3] * 16
        assert float(digits["cfg_w"]) == 2.0
        assert gif_frames(d["this chain as a GIF"][1]) == 8


@pytest.mark.slow
def test_inpainting_page_offers_results_and_chains(deferred):
    at = run_page("inpainting", {**SMALL, "steps_2d": "20", "steps": "5"})
    d = downloads(at, deferred)
    z = npz(d["the 2D samples as .npz"][1])
    assert z["samples"].shape == (400, 2) and np.allclose(z["samples"][:, 0], float(z["known_x1"]), atol=1e-5)
    buttons = [b for b in at.get("download_button") if b.label == "the results as .npz"]
    for b in buttons:  # one per available method (shipped weights)
        r = npz(deferred[b.proto.deferred_file_id][1]())
        assert r["samples"].shape == (8, 28, 28) and r["mask"].shape == (28, 28)
        known = r["mask"] > 0.5
        assert np.abs(r["samples"][:, known] - r["original"][known]).mean() < 0.5  # known pixels kept (about)
    gifs = [b for b in at.get("download_button") if b.label == "the chain as a GIF"]
    assert len(gifs) == len(buttons)
    for b in gifs:
        assert 2 <= gif_frames(deferred[b.proto.deferred_file_id][1]()) <= E.MAX_FRAMES


@pytest.mark.slow
def test_schedule_lab_offers_the_three_schedules_as_npz(deferred):
    at = run_page("schedule_lab", {"T": "50", "schedule": "cosine"})
    d = downloads(at, deferred)
    name, data = d["the three schedules as .npz"]
    assert name == "schedules_T50.npz"
    z = npz(data)
    from lessons.settings import FrameState, build_schedule

    assert z["t"].tolist() == list(range(51))
    for sched in ("linear", "cosine", "sigmoid"):
        s = build_schedule(FrameState(T=50, schedule="cosine"), sched)  # the page's own schedules
        assert np.array_equal(z[f"{sched}_abar"], s.alphas_cumprod.numpy())
        assert np.array_equal(z[f"{sched}_beta"], s.betas.numpy()) and z[f"{sched}_beta"].dtype == np.float64
        assert z[f"{sched}_log_snr"][0] == np.inf and np.isfinite(z[f"{sched}_log_snr"][1:]).all()
        assert np.allclose(z[f"{sched}_sqrt_abar"] ** 2 + z[f"{sched}_sqrt_one_minus_abar"] ** 2, 1.0)
        assert str(z[f"{sched}_describe"]) == s.describe() and sched in str(z[f"{sched}_describe"])
