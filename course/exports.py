"""Exports: a figure as PNG, a chain or trajectory as an animated GIF, samples as .npz.

No streamlit here: pages hand these bytes to st.download_button (built lazily, on click).

- PNG: any plotly figure is saved by the browser through the modebar's camera icon;
  `png_config(key)` sets its format, scale and file name, and app.chart passes it to every chart.
- GIF: `gif_from_points` draws a 2D point cloud per frame (axes, tick labels, a title per frame,
  optional faint data behind it, optional trails for a few particles); `gif_from_images` lays
  out one image or a grid of images per frame, upscaled, with a title. Both keep at most
  MAX_FRAMES frames (evenly spaced, first and last kept) and at most MAX_BYTES: a GIF over the
  byte cap is re-encoded with half the frames (then, for images, a smaller upscale) until it fits.
- .npz: `npz_bytes(**arrays)`, compressed, readable with np.load(..., allow_pickle=False).

Pillow draws everything (it is already a dependency; no matplotlib, no browser).
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from lessons.figures import COLORS

MAX_FRAMES = 60  # frames a GIF may hold; longer runs are subsampled evenly (first and last kept)
MAX_BYTES = 2_000_000  # bytes a GIF may take; above this it is re-encoded with fewer frames
MAX_POINTS = 2000  # points drawn per frame (the first ones; chains keep particles in a fixed order)


# --- PNG (client side) -------------------------------------------------------------------------
def png_config(key: str) -> dict:
    """Plotly config for st.plotly_chart: the camera icon downloads `<key>.png` at twice the screen size."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(key)).strip("_") or "figure"
    return {"toImageButtonOptions": {"format": "png", "scale": 2, "filename": name}, "displaylogo": False}


# --- .npz ------------------------------------------------------------------------------------------
def npz_bytes(**arrays) -> bytes:
    """A compressed .npz holding each keyword as an array (numbers, booleans or strings; no objects).

    Read back with `np.load(io.BytesIO(b), allow_pickle=False)`: every array round-trips exactly.
    """
    if not arrays:
        raise ValueError("npz_bytes needs at least one array, e.g. npz_bytes(samples=x)")
    out = {}
    for name, value in arrays.items():
        a = np.asarray(value)
        if a.dtype == object:
            raise ValueError(f"array {name!r} holds Python objects (dtype=object); pass numbers or strings")
        out[name] = a
    buf = io.BytesIO()
    np.savez_compressed(buf, **out)
    return buf.getvalue()


# --- frames and limits ----------------------------------------------------------------------------
def frame_indices(n: int, max_frames: int = MAX_FRAMES) -> np.ndarray:
    """At most max_frames indices into n frames, evenly spaced, always the first and the last."""
    if n < 1:
        raise ValueError("an animation needs at least one frame")
    if max_frames < 1:
        raise ValueError(f"max_frames must be at least 1; got {max_frames}")
    if n <= max_frames:
        return np.arange(n)
    if max_frames == 1:
        return np.array([n - 1])
    return np.unique(np.round(np.linspace(0, n - 1, max_frames)).astype(int))


def _titles(titles, n: int) -> list[str]:
    if titles is None:
        return [f"frame {i + 1} of {n}" for i in range(n)]
    titles = [str(t) for t in titles]
    if len(titles) != n:
        raise ValueError(f"{len(titles)} titles for {n} frames: give one title per frame")
    return titles


def _encode_gif(images: list[Image.Image], duration_ms: int) -> bytes:
    buf = io.BytesIO()
    images[0].save(buf, "GIF", save_all=True, append_images=images[1:], duration=int(duration_ms), loop=0)
    return buf.getvalue()


# --- text --------------------------------------------------------------------------------------------
_PLAIN = {
    "ᾱ": "abar",
    "√": "sqrt",
    "x̂": "x^",
    "₀": "0",
    "₁": "1",
    "₂": "2",
    "→": "->",
    "−": "-",
    "·": "-",
    "ε": "eps",
    "β": "beta",
    "σ": "sigma",
    "θ": "theta",
    "∅": "null",
}


@lru_cache(maxsize=8)
def _font(size: int) -> tuple[ImageFont.ImageFont, bool]:
    """(font, whether it has Greek and subscripts): DejaVu Sans when the system has it, else Pillow's own."""
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size), True
    except OSError:
        return ImageFont.load_default(size), False


def _text(s: str, size: int) -> tuple[str, ImageFont.ImageFont]:
    font, unicode_ok = _font(size)
    if not unicode_ok:
        for k, v in _PLAIN.items():
            s = s.replace(k, v)
        s = s.encode("ascii", "replace").decode()
    return s, font


def _draw_text(draw: ImageDraw.ImageDraw, xy, s: str, size: int, fill, anchor: str = "la") -> None:
    s, font = _text(s, size)
    draw.text(xy, s, font=font, fill=fill, anchor=anchor)


def _rgb(hex_color: str) -> tuple[int, int, int]:
    h = hex_color.lstrip("#")
    return tuple(int(h[i : i + 2], 16) for i in (0, 2, 4))


def _faint(rgb, amount: float = 0.55) -> tuple[int, int, int]:
    """The colour mixed with white (plotly's opacity on a white page)."""
    return tuple(int(round(c + (255 - c) * amount)) for c in rgb)


# --- 2D point clouds ---------------------------------------------------------------------------
@dataclass(frozen=True)
class PlotBox:
    """Where the square data area sits in a frame: [-half_width, half_width]^2 maps onto
    pixels left..left+size-1 (x grows right) and top..top+size-1 (y grows up)."""

    left: int  # pixel column of x = -half_width
    top: int  # pixel row of y = +half_width
    size: int  # side of the data area, pixels
    half_width: float  # data range is [-half_width, half_width] on both axes
    width: int  # whole frame, pixels
    height: int

    def to_pixel(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) data coordinates -> (N, 2) integer pixel (column, row)."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        u = (xy + self.half_width) / (2 * self.half_width) * (self.size - 1)
        col = self.left + np.round(u[:, 0])
        row = self.top + np.round((self.size - 1) - u[:, 1])
        return np.stack([col, row], 1).astype(np.int64)


def plot_box(half_width: float = 4.0, size: int = 360) -> PlotBox:
    """The layout of every frame of gif_from_points: title on top, tick labels left and below."""
    if not (np.isfinite(half_width) and half_width > 0):
        raise ValueError(f"half_width must be a positive number; got {half_width!r}")
    if not 64 <= int(size) <= 1200:
        raise ValueError(f"size must be from 64 to 1200 pixels; got {size!r}")
    left, top, right, bottom = 58, 34, 14, 64
    return PlotBox(left, top, int(size), float(half_width), left + int(size) + right, top + int(size) + bottom)


def _nice_ticks(half_width: float) -> list[float]:
    """About five round tick values in [-half_width, half_width], symmetric about 0."""
    raw = half_width / 2
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * 0.99), default=raw)
    k = int(math.floor(half_width / step + 1e-9))
    return [i * step for i in range(-k, k + 1)]


def _tick_label(v: float) -> str:
    return f"{v:g}".replace("-", "−")


def _base_frame(box: PlotBox, xlabel: str, ylabel: str, legend: list[tuple[str, tuple]]) -> Image.Image:
    """The static part of every frame: white page, frame, grid, ticks, tick labels, axis labels, legend."""
    im = Image.new("RGB", (box.width, box.height), "white")
    d = ImageDraw.Draw(im)
    x0, y0, x1, y1 = box.left, box.top, box.left + box.size - 1, box.top + box.size - 1
    grid, axis, ink = (232, 232, 232), (120, 120, 120), (40, 40, 40)
    for v in _nice_ticks(box.half_width):
        c, r = box.to_pixel([[v, v]])[0]
        d.line([(c, y0), (c, y1)], fill=grid)
        d.line([(x0, r), (x1, r)], fill=grid)
        d.line([(c, y1), (c, y1 + 4)], fill=axis)
        d.line([(x0 - 4, r), (x0, r)], fill=axis)
        _draw_text(d, (c, y1 + 7), _tick_label(v), 11, ink, "mt")
        _draw_text(d, (x0 - 7, r), _tick_label(v), 11, ink, "rm")
    d.rectangle([x0, y0, x1, y1], outline=axis)
    _draw_text(d, ((x0 + x1) // 2, y1 + 24), xlabel, 13, ink, "mt")
    s, font = _text(ylabel, 13)  # the y label, rotated
    w = int(d.textlength(s, font=font)) + 4
    lab = Image.new("RGB", (w, 18), "white")
    ImageDraw.Draw(lab).text((w // 2, 9), s, font=font, fill=ink, anchor="mm")
    lab = lab.rotate(90, expand=True)
    im.paste(lab, (4, (y0 + y1) // 2 - lab.height // 2))
    x = x0  # the legend, one row under the x label
    for name, rgb in legend:
        d.rectangle([x, y1 + 46, x + 8, y1 + 54], fill=rgb)
        _draw_text(d, (x + 12, y1 + 50), name, 11, ink, "lm")
        s, font = _text(name, 11)
        x += 12 + int(d.textlength(s, font=font)) + 14
    return im


def _stamp(arr: np.ndarray, box: PlotBox, pts: np.ndarray, rgb, radius: int) -> None:
    """Paint each point of pts (N, 2) as a (2 radius + 1)-pixel square, clipped to the data area."""
    pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(1)]
    if not len(pts):
        return
    pix = box.to_pixel(pts)
    lo_c, lo_r = box.left, box.top
    hi_c, hi_r = box.left + box.size - 1, box.top + box.size - 1
    for dc in range(-radius, radius + 1):
        for dr in range(-radius, radius + 1):
            c, r = pix[:, 0] + dc, pix[:, 1] + dr
            ok = (c >= lo_c) & (c <= hi_c) & (r >= lo_r) & (r <= hi_r)
            arr[r[ok], c[ok]] = rgb


def _check_points(name: str, a) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 3 or a.shape[-1] != 2:
        raise ValueError(f"{name} must have shape (frames, points, 2); got {a.shape}")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"{name} is empty: shape {a.shape}")
    return a


def _check_extra(name: str, a, n_frames: int) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 3 or a.shape[0] != n_frames or a.shape[-1] != 2 or a.shape[1] < 1:
        raise ValueError(f"extra[{name!r}] must have shape ({n_frames}, points, 2), one state per frame; got {a.shape}")
    return a


_TRAIL_COLORS = ["#1f77b4", "#8c564b", "#17becf", "#e377c2", "#bcbd22", "#7f7f7f", "#9467bd", "#d62728"]


def render_points(
    frames,
    titles=None,
    *,
    half_width: float = 4.0,
    label: str = "x_t",
    role: str = "x_t",
    extra: dict | None = None,
    backdrop=None,
    backdrop_label: str = "data x₀",
    trails=(),
    size: int = 360,
    radius: int = 1,
    xlabel: str = "x₁",
    ylabel: str = "x₂",
    max_frames: int = MAX_FRAMES,
    max_points: int = MAX_POINTS,
) -> list[Image.Image]:
    """The frames of gif_from_points as RGB images (see there); one per kept frame."""
    frames = np.asarray(frames)  # float64 copies are made of the kept frames only (chains can be long)
    _check_points("frames", frames)
    F = frames.shape[0]
    titles = _titles(titles, F)
    keep = frame_indices(F, max_frames)
    extra = {k: _check_extra(k, v, F)[keep].astype(np.float64) for k, v in (extra or {}).items()}
    roles = ["pred_x0", "learned", "truth", "noise"]
    if len(extra) > len(roles):
        raise ValueError(f"at most {len(roles)} extra clouds; got {len(extra)}")
    trails = [int(i) for i in trails]
    bad = [i for i in trails if not 0 <= i < frames.shape[1]]
    if bad:
        raise ValueError(f"trail particles {bad} are outside 0..{frames.shape[1] - 1}")
    box = plot_box(half_width, size)
    main_rgb = _rgb(COLORS[role])
    legend = []
    if backdrop is not None:
        backdrop = np.asarray(backdrop, dtype=np.float64)
        if backdrop.ndim != 2 or backdrop.shape[1] != 2:
            raise ValueError(f"backdrop must have shape (points, 2); got {backdrop.shape}")
        legend.append((backdrop_label, _faint(_rgb(COLORS["data"]))))
    extra_rgb = {k: _rgb(COLORS[r]) for k, r in zip(extra, roles)}
    legend += [(k, rgb) for k, rgb in extra_rgb.items()] + [(label, main_rgb)]
    base = _base_frame(box, xlabel, ylabel, legend)
    base_arr = np.array(base)
    if backdrop is not None:
        _stamp(base_arr, box, backdrop[:max_points], _faint(_rgb(COLORS["data"])), radius)
    paths = frames[:, trails].astype(np.float64)  # (F, len(trails), 2): trails use every frame, not only kept ones
    out = []
    for j_keep, k in enumerate(keep):
        arr = base_arr.copy()
        for name, a in extra.items():
            _stamp(arr, box, a[j_keep, :max_points], extra_rgb[name], radius)
        im = Image.fromarray(arr)
        d = ImageDraw.Draw(im)
        for j in range(len(trails)):  # the path of each trailed particle up to this frame
            path = paths[: k + 1, j]
            path = path[np.isfinite(path).all(1)]
            if len(path) >= 2:
                p = box.to_pixel(np.clip(path, -box.half_width, box.half_width))
                d.line([tuple(map(int, q)) for q in p], fill=_rgb(_TRAIL_COLORS[j % len(_TRAIL_COLORS)]), width=1)
        arr = np.array(im)  # the points go on top of the trails
        _stamp(arr, box, frames[k, :max_points], main_rgb, radius)
        if trails:  # the trailed particles' current positions, larger
            _stamp(arr, box, paths[k], main_rgb, radius + 1)
        im = Image.fromarray(arr)
        d = ImageDraw.Draw(im)
        _draw_text(d, (box.width // 2, 10), titles[k], 14, (20, 20, 20), "mt")
        out.append(im)
    return out


def _palette_image(images: list[Image.Image]) -> list[Image.Image]:
    """RGB frames -> palette frames sharing ONE palette (exact colours, no dithering)."""
    pal = _shared_palette(images)
    return [im.quantize(palette=pal, dither=Image.Dither.NONE) for im in images]


def _shared_palette(images: list[Image.Image]) -> Image.Image:
    """A 256-colour palette holding every colour of the frames when they have at most 256 (else the commonest)."""
    colors: dict[tuple, int] = {}
    for im in images[:: max(1, len(images) // 8)] + [images[-1]]:
        for count, rgb in im.getcolors(maxcolors=1 << 20) or []:
            colors[rgb] = colors.get(rgb, 0) + count
    top = sorted(colors, key=colors.get, reverse=True)[:256]
    flat = [c for rgb in top for c in rgb] + [0] * (3 * (256 - len(top)))
    pal = Image.new("P", (1, 1))
    pal.putpalette(flat)
    return pal


def gif_from_points(
    frames, titles=None, *, duration_ms: int = 120, max_frames: int = MAX_FRAMES, max_bytes: int = MAX_BYTES, **kw
) -> bytes:
    """An animated GIF of a 2D point cloud over time; frames (F, N, 2), titles one string per frame.

    Each frame: the data area [-half_width, half_width]^2 with a grid, tick labels and labelled axes,
    the frame's title on top (e.g. "t = 500, ᾱ_t = 0.08") and a legend below. Options (see render_points):
    label/role (name and colour role of the main cloud), extra {name: (F, M, 2)} more clouds drawn
    beneath it (e.g. the predicted x̂_0), backdrop (M, 2) faint data behind every frame, trails (particle
    indices) drawn as lines from frame 0 to the current frame, max_points per cloud, size in pixels.

    At most max_frames frames are kept (evenly spaced, first and last); if the GIF is larger than
    max_bytes it is re-encoded with half the frames until it fits (or only 2 are left).
    """
    frames = np.asarray(frames)
    _check_points("frames", frames)
    titles = _titles(titles, frames.shape[0])
    extra = kw.pop("extra", None) or {}
    n = min(int(max_frames), frames.shape[0])
    while True:
        images = render_points(frames, titles, max_frames=n, extra=extra, **kw)
        gif = _encode_gif(_palette_image(images), duration_ms)
        if len(gif) <= max_bytes or n <= 2:
            return gif
        n = max(2, n // 2)


# --- images (digits) -----------------------------------------------------------------------------
def _to_unit(images: np.ndarray, value_range) -> np.ndarray:
    """Images as float in [0, 1]: uint8 /255; else value_range (lo, hi), or guessed: [-1, 1] if any value < 0."""
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    a = np.nan_to_num(images.astype(np.float32), nan=0.0)
    if value_range is None:
        value_range = (-1.0, 1.0) if np.nanmin(images) < 0 else (0.0, 1.0)
    lo, hi = map(float, value_range)
    if not hi > lo:
        raise ValueError(f"value_range must be (low, high) with high > low; got {value_range!r}")
    return np.clip((a - lo) / (hi - lo), 0.0, 1.0)


@dataclass(frozen=True)
class ImageLayout:
    """Where each image sits in a frame of gif_from_images: tile k's pixel (r, c) covers rows
    top + row_k * (H * scale + gap) + r * scale ... (+ scale - 1), and likewise for columns."""

    H: int  # image height, pixels (before upscaling)
    W: int  # image width
    K: int  # images per frame
    cols: int  # images per row
    scale: int  # upscale factor (nearest neighbour)
    gap: int = 4  # pixels between tiles (grey)
    pad: int = 4  # margin around the grid
    title_h: int = 26  # title band on top

    @property
    def rows(self) -> int:
        return math.ceil(self.K / self.cols)

    @property
    def width(self) -> int:
        return max(2 * self.pad + self.cols * self.W * self.scale + (self.cols - 1) * self.gap, 160)

    @property
    def height(self) -> int:
        return self.title_h + self.pad + self.rows * self.H * self.scale + (self.rows - 1) * self.gap

    def origin(self, k: int) -> tuple[int, int]:
        """(row, column) pixel of the top-left corner of tile k."""
        r, c = divmod(int(k), self.cols)
        return (self.title_h + r * (self.H * self.scale + self.gap), self.pad + c * (self.W * self.scale + self.gap))


def image_layout(H: int, W: int, K: int = 1, cols: int | None = None, scale: int = 4) -> ImageLayout:
    cols = min(K, 8) if cols is None else int(cols)
    if not 1 <= cols:
        raise ValueError(f"cols must be at least 1; got {cols}")
    if not 1 <= int(scale) <= 16:
        raise ValueError(f"scale must be from 1 to 16; got {scale!r}")
    return ImageLayout(int(H), int(W), int(K), min(cols, int(K)), int(scale))


def render_images(
    frames, titles=None, *, cols: int | None = None, scale: int = 4, value_range=None, max_frames: int = MAX_FRAMES
) -> list[Image.Image]:
    """The frames of gif_from_images as greyscale images (see there)."""
    a = np.asarray(frames)
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4:
        raise ValueError(f"frames must have shape (F, H, W) or (F, K, H, W); got {np.shape(frames)}")
    F, K, H, W = a.shape
    if min(F, K, H, W) < 1:
        raise ValueError(f"frames is empty: shape {a.shape}")
    if H > 256 or W > 256:
        raise ValueError(f"images up to 256 x 256 pixels; got {H} x {W}")
    titles = _titles(titles, F)
    lay = image_layout(H, W, K, cols, scale)
    unit = _to_unit(a, value_range)
    out = []
    for k in frame_indices(F, max_frames):
        canvas = np.full((lay.height, lay.width), 255, dtype=np.uint8)
        for i in range(K):
            r0, c0 = lay.origin(i)
            tile = np.round(unit[k, i] * 255).astype(np.uint8)
            canvas[r0 : r0 + H * scale, c0 : c0 + W * scale] = np.kron(tile, np.ones((scale, scale), np.uint8))
        im = Image.fromarray(canvas, "L")
        _draw_text(ImageDraw.Draw(im), (lay.width // 2, 6), titles[k], 14, 0, "mt")
        out.append(im)
    return out


def gif_from_images(
    frames,
    titles=None,
    *,
    cols: int | None = None,
    scale: int = 4,
    value_range=None,
    duration_ms: int = 200,
    max_frames: int = MAX_FRAMES,
    max_bytes: int = MAX_BYTES,
) -> bytes:
    """An animated GIF of images over time: frames (F, H, W) or (F, K, H, W) (K images per frame laid
    out in rows of `cols`, default min(K, 8)), values in [-1, 1], [0, 1] (guessed: [-1, 1] if any is
    negative; or give value_range) or uint8. Black = low, white = high; upscaled `scale` times
    (nearest neighbour), the frame's title on top.

    At most max_frames frames (evenly spaced, first and last kept); over max_bytes, re-encoded with
    half the frames, then with a smaller upscale, until it fits.
    """
    a = np.asarray(frames)
    n = min(int(max_frames), a.shape[0] if a.ndim else 0) or 1
    while True:
        images = render_images(a, titles, cols=cols, scale=scale, value_range=value_range, max_frames=n)
        gif = _encode_gif(images, duration_ms)
        if len(gif) <= max_bytes or (n <= 2 and scale <= 1):
            return gif
        if n > 2:
            n = max(2, n // 2)
        else:
            scale = max(1, scale // 2)
