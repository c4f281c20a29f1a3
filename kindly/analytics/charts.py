"""Charts of the reports as SVG, written here without a plotting library: cure curves by group, roll-rate
bars, daily volumes. Pure functions from a report's data to an SVG document, so the CLI writes them to a
file and the console can serve them as they are. Text is escaped; colours come from one fixed palette.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from xml.sax.saxutils import escape

from kindly.analytics.report_models import CureCurveReport, RollRatesReport
from kindly.analytics.reports import BUCKETS

WIDTH, HEIGHT = 720, 400
LEFT, RIGHT, TOP, BOTTOM = 60, 170, 40, 50
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")

Series = Mapping[str, Sequence[tuple[float, float]]]


def line_chart(title: str, series: Series, *, x_label: str, y_label: str, y_max: float) -> str:
    """Lines of ``(x, y)`` points, one per named series, with a legend on the right."""
    xs = [x for points in series.values() for x, _ in points] or [0.0, 1.0]
    x_low, x_high = min(xs), max(max(xs), min(xs) + 1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def at(x: float, y: float) -> str:
        px = LEFT + (x - x_low) / (x_high - x_low) * plot_w
        py = TOP + plot_h - min(y, y_max) / y_max * plot_h
        return f"{px:.1f},{py:.1f}"

    parts = [*_frame(title, x_label, y_label), *_y_ticks(y_max)]
    parts += [
        _text(LEFT, HEIGHT - BOTTOM + 16, f"{x_low:g}"),
        _text(LEFT + plot_w, HEIGHT - BOTTOM + 16, f"{x_high:g}"),
    ]
    for index, (name, points) in enumerate(series.items()):
        colour = PALETTE[index % len(PALETTE)]
        path = " ".join(at(x, y) for x, y in points)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        parts.append(_legend(index, name, colour))
    return _document(parts)


def bar_chart(
    title: str, groups: Mapping[str, Mapping[str, float]], *, categories: Sequence[str], y_label: str
) -> str:
    """Bars per category, one bar per group side by side, heights in [0, 1]."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(categories), 1)
    width = slot * 0.8 / max(len(groups), 1)
    parts = [*_frame(title, "", y_label), *_y_ticks(1.0)]
    for position, category in enumerate(categories):
        parts.append(_text(LEFT + slot * (position + 0.5), HEIGHT - BOTTOM + 16, category))
        for index, values in enumerate(groups.values()):
            value = max(0.0, min(values.get(category, 0.0), 1.0))
            x = LEFT + slot * position + slot * 0.1 + width * index
            y = TOP + plot_h - value * plot_h
            colour = PALETTE[index % len(PALETTE)]
            height = value * plot_h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}" fill="{colour}"/>'
            )
    parts += [_legend(index, name, PALETTE[index % len(PALETTE)]) for index, name in enumerate(groups)]
    return _document(parts)


def cure_curve_chart(report: CureCurveReport) -> str:
    """The share of accounts cured by each day since the due date, one line per group."""
    series: dict[str, list[tuple[float, float]]] = {}
    for point in report.rows:
        if point.share is not None:
            series.setdefault(point.group, []).append((float(point.day), point.share))
    split = f" by {report.by}" if report.by else ""
    return line_chart(
        f"Cure curve{split}, as of {report.as_of}",
        series,
        x_label="days since the due date",
        y_label="share cured",
        y_max=1.0,
    )


def roll_rate_chart(report: RollRatesReport) -> str:
    """For each days-past-due bucket, the share of open accounts that rolled one bucket further by the
    next month-end, one bar per group."""
    groups: dict[str, dict[str, float]] = {}
    for rate in report.rows:
        if (
            rate.from_bucket in BUCKETS[:-1]
            and rate.to_bucket == BUCKETS[BUCKETS.index(rate.from_bucket) + 1]
        ):
            groups.setdefault(rate.group, {})[rate.from_bucket] = rate.share
    split = f" by {report.by}" if report.by else ""
    return bar_chart(
        f"Roll-forward rates{split}, as of {report.as_of}",
        groups,
        categories=BUCKETS[:-1],
        y_label="share rolled forward",
    )


def daily_volume_chart(title: str, days: Sequence[str], volumes: Mapping[str, Sequence[int]]) -> str:
    """Daily counts (SMS sent, replies, ...) as lines over the days, scaled to the largest."""
    top = max([1, *(count for counts in volumes.values() for count in counts)])
    series = {
        name: [(float(i), count / top) for i, count in enumerate(counts)] for name, counts in volumes.items()
    }
    chart = line_chart(
        title,
        series,
        x_label=f"{days[0]} to {days[-1]}" if days else "",
        y_label=f"per day (max {top})",
        y_max=1.0,
    )
    return chart


def _frame(title: str, x_label: str, y_label: str) -> list[str]:
    bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
    return [
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        _text(WIDTH / 2, 22, title, size=15),
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}" stroke="#333"/>',
        f'<line x1="{LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#333"/>',
        _text((LEFT + right) / 2, HEIGHT - 12, x_label),
        f'<text x="16" y="{(TOP + bottom) / 2}" font-size="12" text-anchor="middle" '
        f'transform="rotate(-90 16 {(TOP + bottom) / 2})">{escape(y_label)}</text>',
    ]


def _y_ticks(y_max: float) -> list[str]:
    plot_h = HEIGHT - TOP - BOTTOM
    ticks = []
    for step in range(5):
        value = y_max * step / 4
        y = TOP + plot_h - step / 4 * plot_h
        ticks.append(f'<line x1="{LEFT - 4}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#ddd"/>')
        ticks.append(_text(LEFT - 8, y + 4, f"{value:.0%}" if y_max == 1.0 else f"{value:g}", anchor="end"))
    return ticks


def _legend(index: int, name: str, colour: str) -> str:
    x, y = WIDTH - RIGHT + 16, TOP + 18 * index
    return f'<rect x="{x}" y="{y}" width="12" height="12" fill="{colour}"/>' + _text(
        x + 18, y + 10, name, anchor="start"
    )


def _text(x: float, y: float, text: str, *, size: int = 12, anchor: str = "middle") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}">{escape(text)}</text>'


def _document(parts: list[str]) -> str:
    body = "\n".join(parts)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif">\n{body}\n</svg>\n'
    )
