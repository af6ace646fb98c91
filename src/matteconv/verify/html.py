"""A verify report as one self-contained HTML page: inline CSS, images as base64 PNG data URIs, nothing fetched.

Layout: the metrics table (every stage, skipped and error ones with their reasons), the notes, then one row per
golden input: the input frame as the stages saw it, the golden alpha, the cut-out it makes (the frame over a
checkerboard by that alpha: what a user sees of a matte), and for each stage its alpha and an error
heat map |stage - golden| on a fixed log scale (HEAT_LO..HEAT_HI, the same for every stage and input so maps are
comparable), with a colour-scale legend under it. Previews are at most PREVIEW px; heat maps are downscaled by
block maximum so a single bad pixel stays visible.
"""
from __future__ import annotations

import base64
import html
import math
from pathlib import Path

import cv2
import numpy as np

from ..fileio import atomic_path, encode_image
from .golden import GoldenSet
from .report import HEADERS, floor_ratio, notes, tolerance_text
from .run import METRIC_KEYS, VerifyReport

PREVIEW = 256
HEAT_LO, HEAT_HI = 1e-6, 1.0  # |d alpha| at the two ends of the colour scale (log10)
HEAT_STEPS_PER_DECADE = 4  # quantised colour steps: easier to read and ~2.5x smaller PNGs than a smooth ramp
COLORMAP = cv2.COLORMAP_INFERNO
STATUS_COLOR = {"passed": "#1a7f37", "failed": "#cf222e", "skipped": "#9a6700", "error": "#cf222e"}

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:24px;color:#1f2328;
background:#fff;font-size:14px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.sub{color:#59636e;margin-bottom:16px}
table.m{border-collapse:collapse;font-variant-numeric:tabular-nums}
table.m th,table.m td{border:1px solid #d0d7de;padding:4px 8px;text-align:right;white-space:nowrap}
table.m th{background:#f6f8fa}table.m th.l{text-align:left}table.m td.l{text-align:left}
table.m td.reason{text-align:left;white-space:normal;border-top:none;font-size:13px}
table.m tr.why td{border-top:none}.art{font-size:11px;color:#59636e;font-weight:normal;max-width:220px;
overflow-wrap:anywhere;white-space:normal}
.st{font-weight:600}
ul.notes{color:#59636e;padding-left:20px}
.row{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start;margin-bottom:8px}
figure{margin:0;width:%(w)dpx}figure img{display:block;width:%(w)dpx;image-rendering:pixelated;
border:1px solid #d0d7de;background:#eee}
figcaption{font-size:12px;color:#59636e;margin-top:3px;line-height:1.35}
figcaption b{color:#1f2328}
.legend{height:10px;margin-top:4px;border:1px solid #d0d7de}
.ends{display:flex;justify-content:space-between;font-size:11px;color:#59636e}
.missing{width:%(w)dpx;height:%(w)dpx;display:flex;align-items:center;justify-content:center;text-align:center;
border:1px dashed #d0d7de;color:#59636e;font-size:12px;padding:8px;box-sizing:border-box}
"""


def _png_uri(img: np.ndarray) -> str:
    png = encode_image(img, ".png", "HTML preview", (cv2.IMWRITE_PNG_COMPRESSION, 9))
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _fit(h: int, w: int, limit: int = PREVIEW) -> tuple[int, int]:
    s = min(1.0, limit / max(h, w))
    return max(1, round(h * s)), max(1, round(w * s))


def preview(img: np.ndarray, limit: int = PREVIEW) -> np.ndarray:
    """uint8 image (gray or RGB), area-downscaled to fit limit x limit."""
    h, w = img.shape[:2]
    th, tw = _fit(h, w, limit)
    if (th, tw) == (h, w):
        return img
    return cv2.resize(np.ascontiguousarray(img), (tw, th), interpolation=cv2.INTER_AREA)


def alpha_preview(alpha: np.ndarray) -> np.ndarray:
    return preview(np.clip(np.rint(np.asarray(alpha, np.float64) * 255), 0, 255).astype(np.uint8))


def cutout(frame: np.ndarray, alpha: np.ndarray, cell: int = 16) -> np.ndarray:
    """The frame composited over a grey checkerboard by alpha: `frame` (H, W, 3) uint8 RGB, `alpha` (H, W) in
    [0, 1]; returns (H, W, 3) uint8. I = alpha F + (1 - alpha) B, rounded to nearest."""
    h, w = alpha.shape
    yy, xx = np.mgrid[0:h, 0:w]
    board = np.where(((yy // cell) + (xx // cell)) % 2 == 0, 204.0, 153.0)[..., None]
    a = np.clip(alpha.astype(np.float64), 0.0, 1.0)[..., None]
    return np.clip(np.rint(a * frame.astype(np.float64) + (1.0 - a) * board), 0, 255).astype(np.uint8)


def block_max(a: np.ndarray, limit: int = PREVIEW) -> np.ndarray:
    """Downscale by the maximum of each block (so an isolated large error is not averaged away)."""
    h, w = a.shape
    k = math.ceil(max(h, w) / limit)
    if k <= 1:
        return a
    ph, pw = math.ceil(h / k) * k, math.ceil(w / k) * k
    padded = np.zeros((ph, pw), a.dtype)
    padded[:h, :w] = a
    return padded.reshape(ph // k, k, pw // k, k).max(axis=(1, 3))


def _steps() -> int:
    return round((math.log10(HEAT_HI) - math.log10(HEAT_LO)) * HEAT_STEPS_PER_DECADE)


def heat_values(err: np.ndarray) -> np.ndarray:
    """|d| -> 0..255 on the fixed log scale in HEAT_STEPS_PER_DECADE steps (below HEAT_LO, including exact
    zeros, is 0; HEAT_HI and above is 255)."""
    lo, hi = math.log10(HEAT_LO), math.log10(HEAT_HI)
    n = _steps()
    v = (np.log10(np.maximum(err, HEAT_LO)) - lo) / (hi - lo)
    v = np.floor(np.clip(v, 0.0, 1.0) * n) / n
    return np.clip(np.rint(v * 255), 0, 255).astype(np.uint8)


def colormap(values: np.ndarray) -> np.ndarray:
    bgr = cv2.applyColorMap(values, COLORMAP)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def heat_map(alpha: np.ndarray, golden: np.ndarray) -> np.ndarray:
    err = np.abs(np.asarray(alpha, np.float64) - np.asarray(golden, np.float64))
    return colormap(heat_values(block_max(err)))


def legend_gradient() -> str:
    """CSS stops showing exactly the colours heat_values can produce, one band per step."""
    n = _steps()
    colors = colormap(np.rint(np.arange(n) / n * 255).astype(np.uint8)[None])[0]
    bands = []
    for i, (r, g, b) in enumerate(colors):
        bands.append(f"rgb({r},{g},{b}) {100 * i / n:.2f}% {100 * (i + 1) / n:.2f}%")
    return ", ".join(bands)


def _fmt_e(v: float) -> str:
    if v == 1:
        return "1"
    return f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e").replace("e+", "e")


def _metrics_table(report: VerifyReport) -> str:
    """One row per stage (artifact under the name); a stage with a reason gets it on a full-width row below."""
    floor = report.floor
    cols = ["stage", "status", *(HEADERS[k] for k in METRIC_KEYS), "worst input", "tolerance max/mean", "x floor"]
    rows = []
    for r in report.results:
        color = STATUS_COLOR.get(r.status, "#1f2328")
        cells = [f'<td class="l"><b>{html.escape(r.name)}</b><div class="art">{html.escape(str(r.artifact))}</div></td>',
                 f'<td class="l st" style="color:{color}">{html.escape(r.status)}</td>']
        if r.worst:
            cells += [f"<td>{r.worst[k]:.3g}</td>" for k in METRIC_KEYS]
            ratio = floor_ratio(r, floor)
            cells += [f'<td class="l">{html.escape(r.worst_input)}</td>', f"<td>{html.escape(tolerance_text(r.tolerance))}</td>",
                      f"<td>{ratio}</td>"]
        else:
            cells += ["<td></td>"] * len(METRIC_KEYS)
            cells += ['<td class="l"></td>', f"<td>{html.escape(tolerance_text(r.tolerance)) if r.tolerance else ''}</td>",
                      "<td></td>"]
        rows.append("<tr>" + "".join(cells) + "</tr>")
        if r.reason:
            rows.append(f'<tr class="why"><td></td><td class="reason" colspan="{len(cols) - 1}" style="color:{color}">'
                        f"{html.escape(r.reason)}</td></tr>")
    head = "".join(f'<th{" class=l" if c in ("stage", "status", "worst input") else ""}>{html.escape(c)}</th>'
                   for c in cols)
    caption = ""
    if floor:
        caption = (f'<div class="sub">noise floor (x floor = stage max / this): PyTorch fp32 vs float64 = max '
                   f"{floor.worst['max_abs']:.3g}, mean {floor.worst['mean_abs']:.3g}</div>")
    return f'<table class="m"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>{caption}'


def _figure(uri: str, caption: str, legend: bool = False, alt: str = "") -> str:
    leg = ""
    if legend:
        leg = (f'<div class="legend" style="background:linear-gradient(to right, {legend_gradient()})"></div>'
               f'<div class="ends"><span>&le;{_fmt_e(HEAT_LO)}</span><span>|d| log scale</span>'
               f'<span>{_fmt_e(HEAT_HI)}</span></div>')
    return f'<figure><img src="{uri}" alt="{html.escape(alt, quote=True)}">{leg}<figcaption>{caption}</figcaption></figure>'


def render_html(report: VerifyReport, gset: GoldenSet) -> str:
    """The page as a string (see the module docstring)."""
    frames = gset.frames()
    goldens = [it.golden_alpha() for it in gset.items]
    status = "all stages within tolerance" if report.ok else "FAILED"
    ok_color = STATUS_COLOR["passed" if report.ok else "failed"]
    h, w = report.size
    parts = [f"<h1>matteconv verify: {html.escape(str(report.golden))}</h1>",
             (f'<div class="sub">{len(report.inputs)} inputs at {h}x{w} ({html.escape(gset.manifest.get("policy", ""))} '
              f"policy{', temporal' if gset.temporal else ''}), errors vs the float64 golden alpha (worst input). "
              f'<b style="color:{ok_color}">{status}</b></div>'),
             "<h2>Metrics</h2>", _metrics_table(report)]
    reasons = {f"{r.name}: {r.status}: {r.reason}" for r in report.results if r.reason}
    lines = [n for n in notes(report) if n not in reasons]  # reasons are already in the table
    if lines:
        parts.append('<ul class="notes">' + "".join(f"<li>{html.escape(n)}</li>" for n in lines) + "</ul>")
    shown = [r for r in report.results if r.alphas]
    hidden = [r for r in report.results if not r.alphas]
    hidden_txt = ""
    if hidden:
        hidden_txt = ("<br>No alphas to show for: " + ", ".join(
            f"<b>{html.escape(r.name)}</b> ({html.escape(r.status)}"
            f"{'' if r.status in ('skipped', 'error') else ', verify ran without keeping alphas'})" for r in hidden)
            + " (reasons in the table above).")
    parts.append(f"<h2>Per input</h2><div class=\"sub\">Heat maps: |stage &minus; golden| per pixel, colour on a "
                 f"fixed log scale from {_fmt_e(HEAT_LO)} (and below) to {_fmt_e(HEAT_HI)}, "
                 f"{HEAT_STEPS_PER_DECADE} steps per decade, block maximum when downscaled.{hidden_txt}</div>")
    for i, (item, frame, gold) in enumerate(zip(gset.items, frames, goldens)):
        iname = html.escape(item.name)
        figs = [_figure(_png_uri(preview(np.clip(np.rint(frame), 0, 255).astype(np.uint8))),
                        f"<b>input</b> {iname}", alt=f"input {item.name}"),
                _figure(_png_uri(alpha_preview(gold)), "<b>golden</b> float64 alpha", alt=f"golden alpha {item.name}"),
                _figure(_png_uri(preview(cutout(np.clip(np.rint(frame), 0, 255).astype(np.uint8), gold))),
                        "<b>cut-out</b> by the golden alpha", alt=f"cut-out {item.name}")]
        for r in shown:
            name = html.escape(r.name)
            if i < len(r.alphas) and np.shape(r.alphas[i]) == np.shape(gold):
                row = next((p for p in r.per_input if p.get("input") == item.name), None)
                stats = f"max {row['max_abs']:.2g}, mean {row['mean_abs']:.2g}" if row else ""
                figs.append(_figure(_png_uri(alpha_preview(r.alphas[i])), f"<b>{name}</b> alpha",
                                    alt=f"{r.name} alpha {item.name}"))
                figs.append(_figure(_png_uri(heat_map(r.alphas[i], gold)), f"<b>{name}</b> |d| {stats}", legend=True,
                                    alt=f"{r.name} error heat map {item.name}"))
            else:
                why = (f"alpha shape {np.shape(r.alphas[i])} differs from golden {np.shape(gold)}"
                       if i < len(r.alphas) else "no alpha for this input")
                figs.append(f'<div class="missing"><div><b>{name}</b>: {html.escape(why)}</div></div>')
        parts.append(f'<h2>{html.escape(item.name)}</h2><div class="row">{"".join(figs)}</div>')
    fig_w = min(PREVIEW, max(_fit(h, w)[1], 160))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>matteconv verify: {html.escape(str(report.golden))}</title>"
            f"<style>{CSS % {'w': fig_w}}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")


def write_html(report: VerifyReport, gset: GoldenSet, path: str | Path) -> None:
    """Write the page atomically (temporary file beside `path`, then rename)."""
    text = render_html(report, gset)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
