"""Every figure of every page, with every section opened, has labelled axes (each axis that shows numbers says
what they measure) and only colour scales plotly.js can draw. Read off the figures the pages send (AppTest),
so a figure added later is checked too."""

from __future__ import annotations

import json

import pytest

from tests.helpers import ROOT, open_every_section, open_page

pytestmark = pytest.mark.slow

PAGES = [None] + [f"views/{p.name}" for p in sorted((ROOT / "views").glob("*.py"))]
CARTESIAN = {
    "scatter",
    "scattergl",
    "histogram",
    "histogram2d",
    "histogram2dcontour",
    "heatmap",
    "contour",
    "bar",
    "box",
    "violin",
    "image",
}


def untitled_axes(spec: dict) -> list[str]:
    """The axes that show tick numbers without a title: every axis a cartesian trace is drawn on, and every
    axis the layout declares, unless it is hidden, shows no tick labels, or matches another axis."""
    layout = spec.get("layout", {})
    names = {k for k in layout if k.startswith(("xaxis", "yaxis"))}
    for tr in spec.get("data", []):
        if tr.get("type", "scatter") in CARTESIAN:
            for ref, default in (("xaxis", "x"), ("yaxis", "y")):
                r = tr.get(ref, default)
                names.add(ref + r[1:])  # "x2" -> "xaxis2"
    bad = []
    for name in sorted(names):
        ax = layout.get(name, {})
        if ax.get("visible") is False or ax.get("showticklabels") is False or ax.get("matches"):
            continue
        if not (ax.get("title") or {}).get("text"):
            bad.append(name)
    return bad


# plotly.js's own named colour scales (src/components/colorscale/scales.js). plotly.py knows more names ("gray",
# "viridis_r", ...) and turns them into lists when it validates a trace, but a figure built from plain dicts
# (lessons.figures.fast_figure) sends the name as it is, and plotly.js draws an unknown one in its default.
PLOTLY_JS_SCALES = {
    "Blackbody",
    "Bluered",
    "Blues",
    "Cividis",
    "Earth",
    "Electric",
    "Greens",
    "Greys",
    "Hot",
    "Jet",
    "Picnic",
    "Portland",
    "Rainbow",
    "RdBu",
    "Reds",
    "Viridis",
    "YlGnBu",
    "YlOrRd",
}


def unknown_colorscales(spec: dict) -> list[str]:
    """Colour-scale names in the figure (traces, their markers, the layout's colour axes) plotly.js does not know."""
    holders = [tr for tr in spec.get("data", [])] + [tr.get("marker") or {} for tr in spec.get("data", [])]
    holders += [v for k, v in spec.get("layout", {}).items() if k.startswith("coloraxis")]
    names = [h["colorscale"] for h in holders if isinstance(h.get("colorscale"), str)]
    return [n for n in names if n not in PLOTLY_JS_SCALES]


def test_the_colour_check_finds_a_name_plotly_js_lacks():
    spec = {
        "data": [
            {"type": "heatmap", "z": [[0]], "colorscale": "gray"},
            {"type": "scatter", "marker": {"colorscale": "Viridis"}},
            {"type": "heatmap", "z": [[0]], "colorscale": [[0, "black"], [1, "white"]]},
        ],
        "layout": {"coloraxis": {"colorscale": "viridis_r"}},
    }
    assert unknown_colorscales(spec) == ["gray", "viridis_r"]


def test_the_check_finds_an_untitled_axis():
    spec = {
        "data": [{"type": "scatter", "x": [0, 1], "y": [0, 1]}, {"type": "heatmap", "z": [[0]], "xaxis": "x2"}],
        "layout": {
            "xaxis": {"title": {"text": "t"}},
            "xaxis2": {"showticklabels": False},
            "yaxis3": {"title": {"text": ""}},
        },
    }
    assert untitled_axes(spec) == ["yaxis", "yaxis3"]  # y: default axis, no title; y3: declared, empty title


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p or "home")
def test_every_axis_showing_numbers_has_a_title_and_every_colour_scale_draws(page):
    at = open_every_section(open_page(page, timeout=300))
    assert not at.exception, [e.value for e in at.exception]
    charts = at.get("plotly_chart")
    assert charts, "no figure on the page"
    bad, colours = {}, {}
    for el in charts:
        spec = json.loads(el.proto.spec)
        title = f"{el.proto.id[-12:]} {((spec.get('layout', {}).get('title') or {}).get('text') or '')[:60]!r}"
        if missing := untitled_axes(spec):
            bad[title] = missing
        if unknown := unknown_colorscales(spec):
            colours[title] = unknown
    assert not bad, bad
    assert not colours, colours
