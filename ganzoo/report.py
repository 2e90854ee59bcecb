"""`report.html`: one self-contained page per run that a person can open anywhere.

Everything is inside the file: plots are inline SVG drawn here, images are ``data:`` URIs,
the style sheet is inline, and there is no script. It shows losses (raw and EMA-smoothed),
metrics against kimg (from training and from ``ganzoo eval``), the ADA augmentation
probability when a run logs one, sec/kimg, sample grids over time, the progress GIF, the
latest nearest-neighbour grid, and the run's config. The trainer rewrites it at every
snapshot; it only reads the run directory, so that costs milliseconds.
"""
from __future__ import annotations

import base64
import datetime
import html
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from ganzoo.atomic import atomic_write_text

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
TICK_KEYS = {"kimg", "step", "sec_per_kimg", "train_seconds", "timestamp"}
ADA_KEYS = ("ada_p", "augment_p", "aug_p", "p_aug")
MAX_GRIDS = 12


# -- reading a run ------------------------------------------------------------------------------

def _jsonl(path: Path) -> list[dict]:
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue            # a half-written last line of a killed process
            if isinstance(row, dict):
                rows.append(row)
    return rows


@dataclass
class RunData:
    run: Path
    config: dict
    ticks: list[dict]
    metric_records: list[dict] = field(default_factory=list)   # training and eval

    @classmethod
    def read(cls, run: Path) -> "RunData":
        try:
            config = json.loads((run / "config.json").read_text())
        except (OSError, ValueError):
            config = {}
        ticks, records = [], []
        for row in _jsonl(run / "stats.jsonl"):
            if "metric_records" in row:
                records += [dict(r, source="training") for r in row["metric_records"]]
            elif "kimg" in row:
                ticks.append(row)
        records += [dict(r, source="eval") for r in _jsonl(run / "metrics.jsonl")]
        return cls(run, config, ticks, records)


# -- numbers to pictures --------------------------------------------------------------------------

def ema(values: list[float], weight: float) -> list[float]:
    """Exponential moving average, debiased at the start (as TensorBoard smooths)."""
    out, acc, norm = [], 0.0, 0.0
    for v in values:
        acc = weight * acc + (1 - weight) * v
        norm = weight * norm + (1 - weight)
        out.append(acc / norm)
    return out


def ema_weight(n: int) -> float:
    """More smoothing for longer curves: 0.6 up to 25 points, up to 0.95 at 200 and more."""
    return min(0.95, max(0.6, 1 - 10 / max(n, 1)))


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values (1, 2, 5 x 10^k steps) covering [lo, hi]."""
    if not math.isfinite(lo) or not math.isfinite(hi):
        return [0.0]
    # One value, or two a rounding error apart (an average of identical losses): a step
    # below float resolution would never advance the loop below.
    if hi - lo <= 1e-9 * max(abs(lo), abs(hi)):
        pad = abs(lo) / 2 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first, last = math.floor(lo / step), math.ceil(hi / step - 1e-9)
    # Index arithmetic (never t += step, which stalls once step is below t's resolution),
    # and a bound on the count whatever the inputs.
    return [float(f"{k * step:.12g}") for k in range(first, max(first + 1, last) + 1)][:50]


def _fmt(v: float, step: float) -> str:
    """A tick label with as many decimals as the tick step needs (no repeated labels)."""
    if v == 0:
        return "0"
    if abs(v) >= 1e5 or abs(v) < 1e-4:
        return f"{v:.2e}"
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    if round(step * 10 ** decimals, 6) % 1:      # steps like 0.25
        decimals += 1
    return f"{v:.{decimals}f}"


@dataclass
class Series:
    name: str
    xs: list[float]
    ys: list[float]
    colour: str
    width: float = 2.0
    opacity: float = 1.0
    markers: bool = False
    legend: bool = True


def _legend_rows(names: list[str], room: float) -> list[list[int]]:
    rows: list[list[int]] = [[]]
    used = 0.0
    for i, name in enumerate(names):
        w = 30 + 6.5 * len(name)
        if rows[-1] and used + w > room:
            rows.append([])
            used = 0.0
        rows[-1].append(i)
        used += w
    return rows if rows[0] else []


def line_chart(title: str, series: list[Series], *, xlabel: str = "kimg", ylabel: str = "",
               width: int = 520, height: int = 280) -> str:
    """An inline SVG line chart with axes, round ticks, grid lines and a legend below."""
    series = [s for s in series if s.xs]
    left, right, top, bottom = 64, 16, 34, 44
    legend = [s for s in series if s.legend]
    rows = _legend_rows([s.name for s in legend], width - left - right)
    pw, ph = width - left - right, height - top - bottom
    total = height + 18 * len(rows)
    out = [f'<svg class="chart" width="{width}" height="{total}" '
           f'viewBox="0 0 {width} {total}" role="img" aria-label="{html.escape(title)}">',
           f'<rect width="{width}" height="{total}" fill="#fff"/>',
           f'<text x="{left}" y="20" class="title">{html.escape(title)}</text>']
    points = [(x, y) for s in series for x, y in zip(s.xs, s.ys)
              if math.isfinite(x) and math.isfinite(y)]
    if not points:
        out.append(f'<text x="{left + pw / 2}" y="{top + ph / 2}" text-anchor="middle" '
                   'class="axis">no data yet</text></svg>')
        return "".join(out)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    xt, yt = nice_ticks(min(xs), max(xs)), nice_ticks(min(ys), max(ys))
    x0, x1, y0, y1 = xt[0], xt[-1], yt[0], yt[-1]
    xstep = xt[1] - xt[0] if len(xt) > 1 else 1.0
    ystep = yt[1] - yt[0] if len(yt) > 1 else 1.0

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0 or 1) * pw

    def sy(y: float) -> float:
        return top + ph - (y - y0) / (y1 - y0 or 1) * ph

    for t in xt:
        out.append(f'<line x1="{sx(t):.1f}" y1="{top}" x2="{sx(t):.1f}" y2="{top + ph}" '
                   'class="grid"/>'
                   f'<text x="{sx(t):.1f}" y="{top + ph + 16}" text-anchor="middle" '
                   f'class="axis">{_fmt(t, xstep)}</text>')
    for t in yt:
        out.append(f'<line x1="{left}" y1="{sy(t):.1f}" x2="{left + pw}" y2="{sy(t):.1f}" '
                   'class="grid"/>'
                   f'<text x="{left - 6}" y="{sy(t) + 4:.1f}" text-anchor="end" '
                   f'class="axis">{_fmt(t, ystep)}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" class="frame"/>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 10}" text-anchor="middle" '
               f'class="axis">{html.escape(xlabel)}</text>')
    if ylabel:
        out.append(f'<text transform="translate(14 {top + ph / 2}) rotate(-90)" '
                   f'text-anchor="middle" class="axis">{html.escape(ylabel)}</text>')
    for s in series:
        pts = [(sx(x), sy(y)) for x, y in zip(s.xs, s.ys)
               if math.isfinite(x) and math.isfinite(y)]
        if len(pts) > 1:
            d = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
            out.append(f'<polyline points="{d}" fill="none" stroke="{s.colour}" '
                       f'stroke-width="{s.width}" stroke-opacity="{s.opacity}" '
                       'stroke-linejoin="round"/>')
        if s.markers or len(pts) == 1:
            out += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{s.colour}" '
                    f'fill-opacity="{s.opacity}"/>' for x, y in pts]
    for r, row in enumerate(rows):
        ly, lx = height + 4 + 18 * r, left
        for i in row:
            s = legend[i]
            out.append(f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 18}" y2="{ly - 4}" '
                       f'stroke="{s.colour}" stroke-width="3"/>'
                       f'<text x="{lx + 23}" y="{ly}" class="legend">{html.escape(s.name)}</text>')
            lx += 30 + 6.5 * len(s.name)
    out.append("</svg>")
    return "".join(out)


def _data_uri(path: Path, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


# -- the page ----------------------------------------------------------------------------------

CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:24px;
color:#222;background:#f4f5f7}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px}
.sub{color:#555;font-size:13px}
.charts{display:flex;flex-wrap:wrap;gap:14px;margin-top:14px}
.chart{border:1px solid #ddd;border-radius:4px;background:#fff}
.chart .title{font-size:14px;font-weight:600;fill:#222}
.chart .axis{font-size:11px;fill:#555}.chart .legend{font-size:12px;fill:#333}
.chart .grid{stroke:#eee}.chart .frame{fill:none;stroke:#bbb}
.grids{display:flex;flex-wrap:wrap;gap:12px}
figure{margin:0;background:#fff;border:1px solid #ddd;border-radius:4px;padding:6px}
figcaption{font-size:12px;color:#444;text-align:center;margin-top:4px}
img.px{image-rendering:pixelated}
table{border-collapse:collapse;background:#fff;font-size:13px}
td,th{border:1px solid #ddd;padding:4px 8px;text-align:left}th{background:#eef}
pre{background:#fff;border:1px solid #ddd;padding:10px;font-size:12px;overflow:auto}
.note{font-size:12px;color:#666}
"""


def _loss_charts(data: RunData) -> list[str]:
    ticks = data.ticks
    if not ticks:
        return [line_chart("losses", [])]
    kimg = [float(t["kimg"]) for t in ticks]
    keys = [k for k in ticks[-1] if k not in TICK_KEYS and k not in ADA_KEYS
            and isinstance(ticks[-1][k], (int, float))]
    losses = [k for k in keys if "loss" in k]
    others = [k for k in keys if "loss" not in k]
    weight = ema_weight(len(ticks))
    charts = []
    for title, group in (("losses", losses), ("other training statistics", others)):
        if not group and title != "losses":
            continue
        series = []
        for i, key in enumerate(group):
            pairs = [(x, float(t[key])) for x, t in zip(kimg, ticks)
                     if isinstance(t.get(key), (int, float))]
            xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
            colour = PALETTE[i % len(PALETTE)]
            series.append(Series(key, xs, ys, colour, width=1, opacity=0.3, legend=False))
            series.append(Series(f"{key} (EMA {weight:.2f})", xs, ema(ys, weight), colour))
        charts.append(line_chart(title, series))
    return charts


def _tick_chart(data: RunData, keys, title: str, ylabel: str) -> str | None:
    for key in keys:
        pts = [(float(t["kimg"]), float(t[key])) for t in data.ticks
               if isinstance(t.get(key), (int, float))]
        if pts:
            return line_chart(title, [Series(key, [p[0] for p in pts], [p[1] for p in pts],
                                             PALETTE[0], markers=len(pts) < 30)],
                              ylabel=ylabel)
    return None


FAMILY_TITLES = {"fid": "FID", "kid": "KID", "is": "Inception Score",
                 "nn_distance": "median distance to the nearest training image (features)"}


def _metric_family(score: str) -> str:
    """Scores plotted together: fid and fid50k, precision and recall, ..."""
    if score.startswith(("precision", "recall")):
        return "precision / recall"
    if score.startswith("memorisation"):
        return "memorisation rate"
    base = re.sub(r"\d+k$", "", score)
    return FAMILY_TITLES.get(base, base)


def _metric_charts(data: RunData) -> list[str]:
    families: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for r in data.metric_records:
        if r.get("kimg") is None:
            continue
        for score, value in r.get("scores", {}).items():
            if score.endswith("_std") or not isinstance(value, (int, float)):
                continue
            name = f"{score} [{r.get('extractor', '?')}, {r.get('source')}]"
            families.setdefault(_metric_family(score), {}).setdefault(name, []).append(
                (float(r["kimg"]), float(value)))
    charts = []
    for family, named in families.items():
        series = []
        for i, (name, pts) in enumerate(sorted(named.items())):
            pts.sort()
            series.append(Series(name, [p[0] for p in pts], [p[1] for p in pts],
                                 PALETTE[i % len(PALETTE)], markers=True))
        charts.append(line_chart(f"{family} vs kimg", series))
    return charts


def _resize(record: dict) -> str:
    """The resize, with the Inception preprocessing mode where there is one (scores of
    different modes do not compare)."""
    mode = record.get("fid_mode")
    return f"{record.get('resize')} ({mode})" if mode else str(record.get("resize"))


def _metric_table(data: RunData) -> str:
    latest: dict[tuple, dict] = {}
    for r in data.metric_records:
        latest[(r.get("metric"), r.get("extractor"), r.get("source"))] = r
    if not latest:
        return ('<p class="note">No metrics yet: train with <code>--metrics fid --metrics-every'
                ' KIMG</code> or run <code>ganzoo eval RUN --metrics fid,kid,pr,nn</code>.</p>')
    rows = ["<tr><th>metric</th><th>scores</th><th>kimg</th><th>extractor</th><th>resize</th>"
            "<th>samples (fake / real)</th><th>seed</th><th>from</th></tr>"]
    for r in latest.values():
        scores = ", ".join(f"{k} {v:.4g}" for k, v in r.get("scores", {}).items()
                           if isinstance(v, (int, float)))
        kimg = r.get("kimg")
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in (
            r.get("metric"), scores, "" if kimg is None else f"{kimg:g}",
            f"{r.get('extractor')} [{r.get('extractor_weights', '')}]", _resize(r),
            f"{r.get('num_fake')} / {r.get('num_real')}", r.get("seed"),
            r.get("source"))) + "</tr>")
    return "<table>" + "".join(rows) + "</table>"


def _grids(run: Path) -> list[tuple[str, Path]]:
    samples = run / "samples"
    fakes = sorted(samples.glob("fakes*.png")) if samples.is_dir() else []
    if len(fakes) > MAX_GRIDS:
        step = (len(fakes) - 1) / (MAX_GRIDS - 1)
        fakes = [fakes[round(i * step)] for i in range(MAX_GRIDS)]
    out = [("reals", samples / "reals.png")] if (samples / "reals.png").exists() else []
    for p in fakes:
        try:
            out.append((f"kimg {float(p.stem.removeprefix('fakes')):g}", p))
        except ValueError:
            continue
    return out


def render(run: Path) -> str:
    data = RunData.read(run)
    cfg, train = data.config, data.config.get("train", {})
    last = data.ticks[-1] if data.ticks else {}
    sub = [f"{cfg.get('architecture', '?')} on {cfg.get('data', {}).get('name', '?')}",
           f"{train.get('resolution', '?')} px", f"kimg {last.get('kimg', 0):g} of "
           f"{train.get('kimg', '?')}"]
    if last.get("train_seconds") is not None:
        sub.append(f"{last['train_seconds'] / 60:.1f} min of training")
    sub.append("written " + datetime.datetime.now().strftime("%Y-%m-%d %H:%M"))
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<title>{html.escape(run.name)}</title><style>{CSS}</style></head><body>",
             f"<h1>{html.escape(run.name)}</h1><div class=\"sub\">"
             f"{html.escape(' · '.join(sub))}</div>"]
    parts.append("<h2>Metrics</h2>" + _metric_table(data))
    metric_charts = _metric_charts(data)
    if metric_charts:
        parts.append('<div class="charts">' + "".join(metric_charts) + "</div>")
    charts = _loss_charts(data)
    ada = _tick_chart(data, ADA_KEYS, "ADA augmentation probability p", "p")
    speed = _tick_chart(data, ["sec_per_kimg"], "speed", "sec/kimg")
    charts += [c for c in (ada, speed) if c]
    parts.append("<h2>Training curves</h2><div class=\"charts\">" + "".join(charts) + "</div>")
    grids = _grids(run)
    if grids:
        parts.append("<h2>Samples over training</h2><div class=\"grids\">")
        for caption, path in grids:
            parts.append(f'<figure><img class="px" width="240" src="'
                         f'{_data_uri(path, "image/png")}" alt="{html.escape(caption)}">'
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        parts.append("</div>")
    if (run / "progress.gif").exists():
        parts.append("<h2>Progress</h2><figure style=\"display:inline-block\">"
                     f'<img class="px" width="400" src="'
                     f'{_data_uri(run / "progress.gif", "image/gif")}" alt="progress">'
                     "<figcaption>the sample grids as an animation</figcaption></figure>")
    nn = sorted((run / "eval").glob("nn*.png")) if (run / "eval").is_dir() else []
    if nn:
        parts.append("<h2>Nearest training images</h2><figure style=\"display:inline-block\">"
                     f'<img src="{_data_uri(nn[-1], "image/png")}" alt="nearest neighbours">'
                     f"<figcaption>{html.escape(nn[-1].name)}: samples closest to a training "
                     "image (feature space), their nearest training images by pixels and by "
                     "features; red distances are below the memorisation threshold"
                     "</figcaption></figure>")
    parts.append("<h2>Config</h2><pre>" + html.escape(json.dumps(cfg, indent=2), quote=False)
                 + "</pre>")
    parts.append("</body></html>\n")
    return "".join(parts)


def write_report(run: Path, out: Path | None = None) -> Path:
    """Write ``run/report.html`` (or ``out``) and return its path."""
    run = Path(run)
    out = Path(out) if out else run / "report.html"
    atomic_write_text(out, render(run))
    return out
