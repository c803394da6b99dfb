"""Shared figure conventions: one colour per role on every page, and small plotly helpers.

Roles: the clean data, pure noise, the noisy sample x_t, the predicted x_0, the exact truth
and the learned model. Every page takes its colours from `COLORS`, so "blue is x_t" holds
throughout the course.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

COLORS = {
    "data": "#7f8c8d",  # clean data x_0 (grey, drawn faint behind x_t)
    "noise": "#9b59b6",  # pure noise N(0, I) and its density
    "x_t": "#1f77b4",  # the noisy sample x_t
    "pred_x0": "#d62728",  # the model's predicted x_0
    "truth": "#2ca02c",  # the exact / closed-form answer
    "learned": "#ff7f0e",  # what a learned model or a Monte-Carlo run gives
    "marker": "#e67e22",  # the chosen t, highlights
}
# One colour per schedule, used wherever schedules are overlaid.
SCHEDULE_COLORS = {"linear": "#1f77b4", "cosine": "#d62728", "sigmoid": "#2ca02c", "custom": "#7f7f7f"}
# images in [-1, 1]: black = -1, white = +1, linear. Spelt out, not "gray": plotly.py turns that name into
# a list when it validates a trace, but plotly.js has no scale of that name and draws a dict-built
# heatmap (fast_figure) in its default red-blue instead
DIGIT_COLORSCALE = [[0.0, "rgb(0, 0, 0)"], [1.0, "rgb(255, 255, 255)"]]
MAX_PAYLOAD_BYTES = 1_000_000  # no figure sent to the browser may exceed this per rerun


def finite(a, lo: float = -1e6, hi: float = 1e6) -> np.ndarray:
    """float array with NaN/inf replaced by clipped finite values, so no plot shows a NaN.

    NaN -> lo; -inf -> lo; +inf -> hi; everything clipped to [lo, hi].
    """
    a = np.asarray(a, dtype=np.float64)
    return np.clip(np.nan_to_num(a, nan=lo, neginf=lo, posinf=hi), lo, hi)


def compact(a, decimals: int = 3) -> np.ndarray:
    """float32, rounded, for plotly payloads (sent as base64 typed arrays): 4 bytes a number."""
    return np.round(np.asarray(a, dtype=np.float32), decimals)


TITLE_PX = 34  # the title's band at the top of a figure; a legend on top starts below it


def _title_and_legend(title: str, height: int, legend_below: bool) -> tuple[dict, dict]:
    """The title pinned to the top of the figure, and the legend under it (or below the plot).

    A legend on top sits in the top margin, which plotly grows to fit it; a title left at plotly's default
    place (the middle of that margin) was then drawn under a legend that wrapped to two or more rows in a
    narrow column. Pinning both to the figure's top edge, the legend TITLE_PX below it, keeps them apart."""
    # plotly lifts a title of several lines ~12 px above its anchor; each line after the first takes ~18 px
    breaks = title.count("<br>")
    title = {"text": title, "yref": "container", "y": 1, "yanchor": "top", "pad": {"t": 8 + 12 * bool(breaks)}}
    if legend_below:
        return title, dict(orientation="h", yanchor="top", y=-0.18, xanchor="left", x=0)
    top = (TITLE_PX + 18 * breaks) / height
    return title, dict(orientation="h", yref="container", yanchor="top", y=1 - top, xanchor="left", x=0)


def layout(
    fig: go.Figure, title: str = "", x: str = "", y: str = "", height: int = 380, legend_below: bool = False, **kw
) -> go.Figure:
    """The common layout: title, labelled axes, compact margins, legend on top (or below the plot,
    for figures with subplot titles)."""
    title, legend = _title_and_legend(title, height, legend_below)
    fig.update_layout(title=title, height=height, margin=dict(l=50, r=20, t=70, b=45), legend=legend, **kw)
    fig.update_xaxes(title_text=x)
    fig.update_yaxes(title_text=y)
    return fig


def legend_inside(fig: go.Figure) -> go.Figure:
    """The legend in the plot's top-left corner, on a translucent box (for figures whose legend has no room
    above the plot)."""
    return fig.update_layout(
        legend=dict(yref="paper", x=0.01, y=0.99, xanchor="left", yanchor="top", bgcolor="rgba(255,255,255,0.75)")
    )


def animation_controls(
    fig: go.Figure, names: list[str], duration_ms: int = 150, slider_prefix: str | None = "t = ", bottom: int = 110
) -> go.Figure:
    """Play / pause buttons (and, unless slider_prefix is None, a slider over the frames `names`) below the
    plot: the browser steps through fig.frames with no server round trip."""
    play = dict(
        label="▶ play",
        method="animate",
        args=[None, dict(frame=dict(duration=duration_ms, redraw=True), fromcurrent=True, transition=dict(duration=0))],
    )
    pause = dict(label="❚❚", method="animate", args=[[None], dict(frame=dict(duration=0), mode="immediate")])
    menus = [dict(type="buttons", buttons=[play, pause], x=0, y=-0.1, xanchor="left", yanchor="top", direction="left")]
    sliders = (
        []
        if slider_prefix is None
        else [
            dict(
                steps=[
                    dict(
                        label=n,
                        method="animate",
                        args=[[n], dict(frame=dict(duration=0, redraw=True), mode="immediate")],
                    )
                    for n in names
                ],
                x=0.2,
                len=0.8,
                y=-0.06,
                currentvalue=dict(prefix=slider_prefix),
            )
        ]
    )
    return fig.update_layout(updatemenus=menus, sliders=sliders, margin=dict(b=bottom))


def equal_axes(fig: go.Figure, half_width: float) -> go.Figure:
    """Square 2D axes from -half_width to half_width on both sides."""
    fig.update_xaxes(range=[-half_width, half_width], constrain="domain")
    fig.update_yaxes(range=[-half_width, half_width], scaleanchor="x", scaleratio=1)
    return fig


def scatter2d(x: np.ndarray, name: str, role: str, size: float = 4, opacity: float = 0.7) -> go.Scatter:
    """A 2D point cloud (N, 2) in the colour of its role.

    SVG (one node a point), not WebGL (scattergl): Streamlit mounts a new plot for every changed figure, so
    a WebGL cloud creates fresh WebGL contexts on each slider move, which cost more than drawing the
    SVG on the course's pages (bench_pages times a move)."""
    x = compact(x)
    return go.Scatter(
        x=x[:, 0], y=x[:, 1], mode="markers", name=name, marker=dict(size=size, color=COLORS[role], opacity=opacity)
    )


def image_heatmap(img: np.ndarray, name: str = "", showscale: bool = False) -> go.Heatmap:
    """A (28, 28) image in [-1, 1] as a grey heatmap, row 0 at the top."""
    img = compact(np.clip(finite(img), -1.5, 1.5), 2)
    return go.Heatmap(
        z=img[::-1],
        zmin=-1,
        zmax=1,
        colorscale=DIGIT_COLORSCALE,
        showscale=showscale,
        name=name,
        hovertemplate="pixel value %{z:.2f}<extra></extra>",
    )


# --- figures built from plain dicts: for the figures a slider rebuilds on every move ------------------
# Plotly's object API validates every property as it is set: a two-panel figure from make_subplots
# costs 30-60 ms to build, the same figure from plain dicts about 1 ms. A page rerun on a server that a
# whole class shares pays that for every figure, so the figures a slider redraws are written as dicts
# (the JSON that plotly.js reads; see https://plotly.com/javascript/reference/). The tests push every
# such figure through `validated`, so a misspelt property still fails there, not in a lecture.
def fast_figure(traces: list[dict], layout_: dict) -> go.Figure:
    """A go.Figure from trace and layout dicts, without plotly's property validation."""
    return go.Figure({"data": traces, "layout": layout_}, _validate=False)


def validated(fig: go.Figure) -> go.Figure:
    """The same figure rebuilt WITH validation: raises ValueError on any invalid property (for tests)."""
    return go.Figure(fig.to_dict())


def layout_dict(
    title: str = "",
    x: str = "",
    y: str = "",
    height: int = 380,
    legend_below: bool = False,
    fixed_margins: bool = False,
    **kw,
) -> dict:
    """`layout()` as a dict: title, labelled axes, compact margins, legend on top (or below).

    fixed_margins: margins sized for the legend and not grown by plotly (autoexpand off). A figure a slider
    redraws has a legend whose text changes with t; plotly then re-measures the margins and draws the
    figure a second time on every move."""
    title, legend = _title_and_legend(title, height, legend_below)
    margin = dict(l=50, r=20, t=70, b=45)
    if fixed_margins:
        margin.update(l=60, b=100 if legend_below else 50, autoexpand=False)
        if legend_below:  # at the foot of the figure, inside the fixed bottom margin, whatever the height
            legend.update(yref="container", y=0, yanchor="bottom")
    return {
        "title": title,
        "height": height,
        "margin": margin,
        "legend": legend,
        "xaxis": {"title": {"text": x}},
        "yaxis": {"title": {"text": y}},
        **kw,
    }


def _panel_title(text: str, x: float, y: float) -> dict:
    """A panel's title: an annotation centred at (x, y) in paper coordinates, sitting on that point."""
    return dict(
        text=text,
        x=x,
        y=y,
        xref="paper",
        yref="paper",
        xanchor="center",
        yanchor="bottom",
        showarrow=False,
        font=dict(size=14),
    )


def panels(n: int, titles: list[str], gap: float = 0.08, share_y: bool = False, vertical: bool = False) -> dict:
    """Layout entries for n panels side by side (what make_subplots(1, n) makes), or stacked with a shared
    t axis (vertical=True, what make_subplots(n, 1, shared_xaxes=True) makes): axes xaxis, xaxis2, ...
    on equal domains, y axes anchored to them, and the panel titles as annotations. Trace k of panel j
    uses xaxis="x{j+1}", yaxis="y{j+1}" (plain "x", "y" for the first); see `panel_axes`."""
    size = (1 - gap * (n - 1)) / n
    out, notes = {}, []
    for j in range(n):
        lo = j * (size + gap) if not vertical else 1 - size - j * (size + gap)  # row 1 at the top
        sfx = "" if j == 0 else str(j + 1)
        if vertical:
            out[f"xaxis{sfx}"] = {
                "domain": [0, 1],
                "anchor": f"y{sfx}",
                **({"matches": "x"} if j else {}),
                **({} if j == n - 1 else {"showticklabels": False}),
            }
            out[f"yaxis{sfx}"] = {"domain": [lo, lo + size], "anchor": f"x{sfx}"}
            notes.append(_panel_title(titles[j], 0.5, lo + size))
        else:
            out[f"xaxis{sfx}"] = {"domain": [lo, lo + size], "anchor": f"y{sfx}"}
            out[f"yaxis{sfx}"] = {"domain": [0, 1], "anchor": f"x{sfx}", **({"matches": "y"} if share_y and j else {})}
            notes.append(_panel_title(titles[j], lo + size / 2, 1.0))
    out["annotations"] = notes
    return out


def panel_axes(j: int) -> dict:
    """The axis references of panel j (0-based) for a trace dict."""
    return {"xaxis": "x" if j == 0 else f"x{j + 1}", "yaxis": "y" if j == 0 else f"y{j + 1}"}


def points(x: np.ndarray, name: str, role: str, size: float = 4, opacity: float = 0.7, **kw) -> dict:
    """`scatter2d` as a dict: a 2D point cloud (N, 2) in the colour of its role."""
    x = compact(x)
    return dict(
        type="scatter",
        x=x[:, 0],
        y=x[:, 1],
        mode="markers",
        name=name,
        marker=dict(size=size, color=COLORS[role], opacity=opacity),
        **kw,
    )


def normal_pdf_line(lo: float = -4, hi: float = 4, **kw) -> dict:
    """The N(0, 1) density as a line trace (the target every marginal heads to)."""
    grid = np.linspace(lo, hi, 161)
    return {
        "type": "scatter",
        "x": grid,
        "y": np.exp(-0.5 * grid**2) / np.sqrt(2 * np.pi),
        "mode": "lines",
        "name": "N(0, 1)",
        "line": dict(color=COLORS["noise"], width=2),
        **kw,
    }  # kw may rename it


def heatmap_dict(img: np.ndarray, showscale: bool = False, **kw) -> dict:
    """`image_heatmap` as a dict: a (28, 28) image in [-1, 1], grey, row 0 at the top."""
    img = compact(np.clip(finite(img), -1.5, 1.5), 2)
    return dict(
        type="heatmap",
        z=img[::-1],
        zmin=-1,
        zmax=1,
        colorscale=DIGIT_COLORSCALE,
        showscale=showscale,
        hovertemplate="pixel value %{z:.2f}<extra></extra>",
        **kw,
    )


def marked_t(t: float, label: str | None = None) -> dict:
    """Layout entries (shapes, annotations) for a dashed vertical line at x = t: the chosen time."""
    return {
        "shapes": [
            dict(
                type="line",
                x0=t,
                x1=t,
                y0=0,
                y1=1,
                xref="x",
                yref="paper",
                line=dict(color=COLORS["marker"], dash="dash"),
            )
        ],
        "annotations": [
            dict(
                text=label or f"t = {t}",
                x=t,
                y=1,
                xref="x",
                yref="paper",
                xanchor="left",
                yanchor="bottom",
                showarrow=False,
            )
        ],
    }


def tile_images(images, cols: int = 8, pad: int = 2) -> np.ndarray:
    """(N, H, W) or (N, 1, H, W) images -> one (rows * (H + pad), cols * (W + pad)) array, row-major, with
    blank (black) gutters after every image: a grid of digits drawn as one heatmap. Images in [-1, 1] become
    float32 with -1 gutters; uint8 images (0..255) stay uint8, gutters 0, a quarter of the payload."""
    imgs = np.asarray(images)
    imgs = imgs if imgs.dtype == np.uint8 else imgs.astype(np.float32)
    imgs = imgs.reshape(-1, *imgs.shape[-2:])  # (N, H, W)
    n, H, W = imgs.shape
    rows = max(1, math.ceil(n / cols))
    out = np.full((rows * (H + pad), cols * (W + pad)), 0 if imgs.dtype == np.uint8 else -1.0, dtype=imgs.dtype)
    for k in range(n):
        r, c = divmod(k, cols)
        out[r * (H + pad) : r * (H + pad) + H, c * (W + pad) : c * (W + pad) + W] = imgs[k]
    return out


def payload_bytes(fig: go.Figure) -> int:
    """Size in bytes of the figure's JSON, as the page sends it to the browser."""
    return len(pio.to_json(fig, validate=False, engine="orjson" if _has_orjson() else "json"))


def _has_orjson() -> bool:
    try:
        import orjson  # noqa: F401
    except ImportError:
        return False
    return True


def assert_no_nan(fig: go.Figure) -> None:
    """Raise ValueError if any trace of the figure (or of its frames) holds a NaN or inf."""
    traces = list(fig.data) + [tr for fr in (fig.frames or ()) for tr in fr.data]
    for tr in traces:
        for attr in ("x", "y", "z"):
            v = getattr(tr, attr, None)
            if v is None:
                continue
            try:
                arr = np.asarray(v, dtype=np.float64)
            except (TypeError, ValueError):
                continue  # category labels
            if arr.size and not np.isfinite(arr).all():
                raise ValueError(f"trace {tr.name!r} has non-finite values in {attr}")
