"""Pictures for people: per-level height-loss map + AP curve (PNG, drawn with Pillow), HTML report.

matplotlib is not a dependency of Kintsugi, so the figure is drawn directly: an axial map of the
relative height loss of every column (anterior up, patient's right on the left as radiologists read
axial images), the central 40 % slab and its anterior/middle/posterior thirds marked, and beside it
the height loss along the anterior-posterior axis within the slab, sharing the map's vertical axis.
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from kintsugi_spine.grading import GRADE_COLOURS, GRADE_NAMES
from kintsugi_spine.measure import SLAB, grid_coords

# Loss -> colour: blue where taller than the reference, white at 0, yellow at Genant's 20 %, red at 40 %.
_ANCHORS = [(-0.10, (60, 110, 200)), (0.0, (240, 240, 240)), (0.20, (250, 200, 40)), (0.40, (225, 55, 30)),
            (0.60, (110, 0, 40))]


def colormap(loss: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 colours of height-loss fractions."""
    x = np.clip(np.nan_to_num(loss, nan=0.0), _ANCHORS[0][0], _ANCHORS[-1][0])
    xs = [a[0] for a in _ANCHORS]
    out = np.stack([np.interp(x, xs, [a[1][c] for a in _ANCHORS]) for c in range(3)], axis=-1)
    return out.astype(np.uint8)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def loss_map(obs: np.ndarray, ref: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """Per-column relative height loss (NaN outside the body)."""
    with np.errstate(all="ignore"):
        return np.where(footprint & (ref > 0), (ref - obs) / ref, np.nan)


def ap_curve(obs: np.ndarray, ref: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Height loss per AP row over the measured (kept) columns of the central slab; NaN elsewhere."""
    slab = np.abs(grid_coords()) <= SLAB
    m = kept[:, slab] & (ref[:, slab] > 0)
    o = np.where(m, obs[:, slab], 0.0).sum(1)
    r = np.where(m, ref[:, slab], 0.0).sum(1)
    with np.errstate(all="ignore"):
        return np.where(r > 0, 1.0 - o / r, np.nan)


def _section_bounds(masks: dict[str, np.ndarray]) -> list[tuple[str, float, float]]:
    """(name, t_lo, t_hi) of each section, from the kept-column masks."""
    g = grid_coords()
    out = []
    for name in ("posterior", "middle", "anterior"):
        rows = np.flatnonzero(masks[name].any(axis=1))
        if len(rows):
            out.append((name, float(g[rows[0]]), float(g[rows[-1]])))
    return out


def figure(level: str, obs: np.ndarray, ref: np.ndarray, footprint: np.ndarray, masks: dict[str, np.ndarray],
           half_w: float, half_d: float, record: dict) -> bytes:
    """The PNG of one level."""
    g = grid_coords()
    n = len(g)
    rows = np.flatnonzero(footprint.any(axis=1))
    cols = np.flatnonzero(footprint.any(axis=0))
    if len(rows) == 0:
        rows = cols = np.arange(n)
    r0, r1 = max(rows[0] - 2, 0), min(rows[-1] + 3, n)
    c0, c1 = max(cols[0] - 2, 0), min(cols[-1] + 3, n)
    cell = 2.4 / (n - 1)
    px_mm = 9.0
    cw, ch = cell * half_w * px_mm, cell * half_d * px_mm  # pixels per cell, physical aspect
    map_w, map_h = int(round((c1 - c0) * cw)), int(round((r1 - r0) * ch))
    loss = loss_map(obs, ref, footprint)
    rgb = colormap(loss)
    rgb[~footprint] = (30, 30, 30)
    crop = rgb[r0:r1, c0:c1][::-1]  # anterior (high t) at the top
    heat = Image.fromarray(np.ascontiguousarray(crop)).resize((map_w, map_h), Image.NEAREST)

    pad, title_h, bar_h, curve_w, label_w = 16, 54, 46, 230, 46
    width = pad + label_w + map_w + pad + curve_w + pad
    height = title_h + map_h + bar_h + pad
    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    f_big, f = _font(17), _font(13)
    hl = record["height_loss"]
    grade = record["genant_grade"]
    shape = ("borderline " if record.get("borderline") else "") + record["morphology"]
    draw.text((pad, 6), f"{level}: Genant grade {grade} ({GRADE_NAMES[grade]}), {shape}",
              fill=GRADE_COLOURS[grade] if grade else (0, 0, 0), font=f_big)
    draw.text((pad, 28), "height loss  Ant {:.0f} %   Mid {:.0f} %   Post {:.0f} %   overall {:.0f} %".format(
        *(100 * hl[k] for k in ("anterior", "middle", "posterior", "overall"))), fill=(40, 40, 40), font=f)
    x0, y0 = pad + label_w, title_h
    img.paste(heat, (x0, y0))

    def row_y(t: float) -> float:  # t (normalised AP) -> image y
        return y0 + (r1 - 0.5 - ((t + 1.2) / cell)) * ch

    def col_x(s: float) -> float:
        return x0 + (((s + 1.2) / cell) + 0.5 - c0) * cw

    for s in (-SLAB, SLAB):
        x = col_x(s)
        for yy in range(int(y0), int(y0 + map_h), 8):
            draw.line([(x, yy), (x, min(yy + 4, y0 + map_h))], fill=(0, 0, 0), width=1)
    bounds = _section_bounds(masks)
    short = {"anterior": "Ant", "middle": "Mid", "posterior": "Post"}
    for name, lo, hi in bounds:
        ya, yb = row_y(hi + cell / 2), row_y(lo - cell / 2)
        draw.line([(col_x(-SLAB), yb), (col_x(SLAB), yb)], fill=(0, 0, 0), width=1)
        draw.text((pad, (ya + yb) / 2 - 7), short[name], fill=(0, 0, 0), font=f)
        draw.line([(x0 - 6, ya), (x0 - 6, yb)], fill=(0, 0, 0), width=2)
    draw.text((x0, y0 + map_h + 2), "R", fill=(0, 0, 0), font=f)
    draw.text((x0 + map_w - 10, y0 + map_h + 2), "L", fill=(0, 0, 0), font=f)

    # AP curve beside the map: loss on x (0..60 %), AP on y shared with the map.
    cx0, cx1 = x0 + map_w + pad + 10, x0 + map_w + pad + curve_w - 10
    lo_x, hi_x = -0.1, 0.6

    def lx(v: float) -> float:
        return cx0 + (np.clip(v, lo_x, hi_x) - lo_x) / (hi_x - lo_x) * (cx1 - cx0)

    draw.rectangle([cx0, y0, cx1, y0 + map_h], outline=(120, 120, 120))
    for v, col in ((0.0, (150, 150, 150)), (0.2, (250, 200, 40)), (0.25, (240, 130, 30)), (0.4, (215, 40, 40))):
        draw.line([(lx(v), y0), (lx(v), y0 + map_h)], fill=col, width=1)
        if v != 0.25:
            draw.text((lx(v) - 8, y0 + map_h + 2), f"{100 * v:.0f}", fill=(60, 60, 60), font=f)
    curve = ap_curve(obs, ref, masks["anterior"] | masks["middle"] | masks["posterior"])
    pts = [(lx(float(curve[r])), row_y(float(g[r]))) for r in range(n) if np.isfinite(curve[r])]
    if len(pts) > 1:
        draw.line(pts, fill=(20, 20, 120), width=2)
    for name, lo, hi in bounds:
        ya, yb = row_y(hi + cell / 2), row_y(lo - cell / 2)
        draw.line([(cx0, yb), (cx1, yb)], fill=(200, 200, 200), width=1)
        draw.text((cx1 - 34, (ya + yb) / 2 - 7), short[name], fill=(90, 90, 90), font=f)
    draw.text((cx0, y0 + map_h + 16), "height loss along AP, central slab (%)", fill=(60, 60, 60), font=f)

    # Colour bar.
    by = y0 + map_h + 20
    bx0, bx1 = pad + label_w, pad + label_w + max(map_w, 160)
    ramp = colormap(np.linspace(-0.1, 0.6, bx1 - bx0))[None].repeat(10, axis=0)
    img.paste(Image.fromarray(ramp), (bx0, by))
    for v in (0.0, 0.2, 0.4, 0.6):
        x = bx0 + (v + 0.1) / 0.7 * (bx1 - bx0 - 1)
        draw.text((x - 6, by + 11), f"{100 * v:.0f}%", fill=(40, 40, 40), font=f)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %"


def report_html(records: list[dict], pngs: dict[str, bytes], info: dict) -> str:
    """A self-contained page: summary, table coloured by grade, each level's map."""
    rows = []
    for r in records:
        g = r["genant_grade"]
        colour = "#{:02x}{:02x}{:02x}".format(*GRADE_COLOURS[g])
        h, ref, loss = r["heights_mm"], r["reference_heights_mm"], r["height_loss"]
        flag = " (flagged)" if r["reference"]["flagged"] else ""
        rows.append(
            f"<tr><td><b>{html.escape(r['level'])}</b></td>"
            + "".join(f"<td>{h[k]:.1f} / {ref[k]:.1f}</td>" for k in ("anterior", "middle", "posterior"))
            + "".join(f"<td>{_pct(loss[k])}</td>" for k in ("anterior", "middle", "posterior", "overall"))
            + f"<td style='background:{colour};color:{'#000' if g < 2 else '#fff'}'><b>{g}</b> {GRADE_NAMES[g]}</td>"
            + f"<td>{'borderline ' if r.get('borderline') else ''}{html.escape(r['morphology'])}</td>"
            + f"<td>{html.escape(r['reference']['method'])}{flag}</td></tr>")
    figs = "".join(
        f"<figure><img src='data:image/png;base64,{base64.b64encode(b).decode()}' alt='{html.escape(lv)}'>"
        f"<figcaption>{html.escape(lv)}</figcaption></figure>" for lv, b in pngs.items())
    notes = "".join(f"<li>{html.escape(str(k))}: {html.escape(str(v))}</li>" for k, v in info.get("notes", {}).items())
    fractured = [r["level"] for r in records if r["genant_grade"] > 0]
    headline = (f"Height loss of 20 % or more (Genant grade ≥ 1) at: {', '.join(fractured)}." if fractured
                else "No vertebral body has lost 20 % or more of its estimated pre-fracture height.")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Vertebral height loss</title>
<style>body{{font-family:sans-serif;margin:24px;color:#222}} table{{border-collapse:collapse}}
td,th{{border:1px solid #bbb;padding:4px 8px;text-align:right}} td:first-child{{text-align:left}}
figure{{display:inline-block;margin:8px}} .small{{color:#555;font-size:90%}}</style></head><body>
<h1>Vertebral height loss</h1>
<p><b>{html.escape(headline)}</b></p>
<p class="small">Source: {html.escape(str(info.get('source', '')))}.
Numbering: {html.escape(str(info.get('numbering', '')))}.
Reference: {html.escape(str(info.get('method', '')))}. Research software, not for diagnosis.</p>
<table><tr><th>level</th><th>anterior mm<br>(measured / reference)</th><th>middle mm</th><th>posterior mm</th>
<th>loss ant</th><th>loss mid</th><th>loss post</th><th>overall</th><th>Genant grade</th><th>morphology</th>
<th>reference</th></tr>
{''.join(rows)}</table>
<p class="small">Heights are means of the body's column heights (superior-inferior, along the spine curve) over
the anterior, middle and posterior thirds of the central 40 % of its width, in mm. Loss = (reference − measured) /
reference; the reference is the body's estimated pre-fracture shape from its neighbours. Genant grade from the
largest section loss: 0 &lt; 20 %, 1: 20–25 %, 2: 25–40 %, 3: &gt; 40 %. Morphology: wedge (anterior),
biconcave (middle), crush (posterior or whole body); a shape with 15–20 % loss, or with 10–15 % loss and
a clear in-body wedge or central depression, is named but marked borderline (Genant's "grade 0.5"), not a
fracture.</p>
{'<h3>Notes</h3><ul>' + notes + '</ul>' if notes else ''}
<h2>Height-loss maps</h2>
<p class="small">Each map is an axial view of the body (anterior up, patient's right on the left); colour = loss of
that column's height (white none, yellow 20 %, red 40 %+, blue taller than reference). Dashed lines: central
40 % slab; Ant/Mid/Post: its thirds. Right: loss along the anterior-posterior axis within the slab.</p>
{figs}
</body></html>"""
