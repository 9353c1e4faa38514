"""Server-rendered SVG charts for the admin's analytics dashboard.

Pure geometry: each function turns a daily series into the shapes a template
draws (``templates/admin/paygate/_chart.html``). No script, no external
resource, nothing inline but SVG, so a strict Content-Security-Policy holds.
Colours are CSS variables of ``static/paygate/admin.css``, so the charts follow
the admin's light and dark themes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

WIDTH = 640
HEIGHT = 220
#: Room for the axis labels: left, right, top, bottom.
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 84, 16, 14, 32


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str
    anchor: str = "middle"


@dataclass
class Chart:
    """What ``_chart.html`` draws: bars, one polyline with its points, grid lines, labels."""

    title: str
    width: int = WIDTH
    height: int = HEIGHT
    bars: list[Bar] = field(default_factory=list)
    line: str = ""
    points: list[Bar] = field(default_factory=list)
    grid: list[Label] = field(default_factory=list)
    x_labels: list[Label] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)
    empty: bool = False

    @property
    def plot_left(self) -> int:
        return PAD_LEFT

    @property
    def plot_right(self) -> int:
        return self.width - PAD_RIGHT

    @property
    def baseline(self) -> int:
        return self.height - PAD_BOTTOM


def days(start: date, end: date) -> list[date]:
    """Every day from ``start`` to ``end``, both included."""
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def _x_labels(chart: Chart, series: list[date], slot: float) -> None:
    count = len(series)
    picks = sorted({0, count // 2, count - 1}) if count > 2 else list(range(count))
    for index in picks:
        x = PAD_LEFT + slot * (index + 0.5)
        chart.x_labels.append(Label(x, chart.height - 8, series[index].strftime("%b %d")))


def _grid(chart: Chart, top: float, label: Callable[[float], str]) -> None:
    plot_height = chart.baseline - PAD_TOP
    for fraction in (0.0, 0.5, 1.0):
        y = chart.baseline - plot_height * fraction
        chart.grid.append(Label(PAD_LEFT - 6, y, label(top * fraction), anchor="end"))


def volume_chart(
    title: str,
    series: list[date],
    values: Mapping[date, tuple[int, int]],
    fmt: Callable[[int], str],
) -> Chart:
    """Bars per day: captured and refunded amounts (minor units, one currency)."""
    chart = Chart(title=title, legend=[("pg-captured", "captured"), ("pg-refunded", "refunded")])
    top = max((max(v) for v in values.values()), default=0)
    chart.empty = top == 0
    top = top or 1
    slot = (chart.plot_right - PAD_LEFT) / max(1, len(series))
    bar = max(1.0, slot * 0.4)
    plot_height = chart.baseline - PAD_TOP
    for index, day in enumerate(series):
        captured, refunded = values.get(day, (0, 0))
        left = PAD_LEFT + slot * index + (slot - 2 * bar) / 2
        for offset, amount, css, what in (
            (0.0, captured, "pg-captured", "captured"),
            (bar, refunded, "pg-refunded", "refunded"),
        ):
            if amount <= 0:
                continue
            height = max(1.0, plot_height * amount / top)
            chart.bars.append(
                Bar(
                    round(left + offset, 2),
                    round(chart.baseline - height, 2),
                    round(bar, 2),
                    round(height, 2),
                    css,
                    f"{day.isoformat()}: {fmt(amount)} {what}",
                )
            )
    _grid(chart, top, lambda v: fmt(round(v)) if not chart.empty else fmt(0))
    _x_labels(chart, series, slot)
    return chart


def rate_chart(title: str, series: list[date], values: Mapping[date, tuple[int, int]]) -> Chart:
    """A line of the daily success rate: paid / (paid + failed), days with neither left out."""
    chart = Chart(title=title, legend=[("pg-rate", "success rate")])
    slot = (chart.plot_right - PAD_LEFT) / max(1, len(series))
    plot_height = chart.baseline - PAD_TOP
    coordinates = []
    for index, day in enumerate(series):
        paid, failed = values.get(day, (0, 0))
        if paid + failed == 0:
            continue
        rate = paid / (paid + failed)
        x = round(PAD_LEFT + slot * (index + 0.5), 2)
        y = round(chart.baseline - plot_height * rate, 2)
        coordinates.append(f"{x},{y}")
        chart.points.append(
            Bar(x, y, 3, 3, "pg-rate", f"{day.isoformat()}: {rate:.1%} ({paid} of {paid + failed})")
        )
    chart.line = " ".join(coordinates)
    chart.empty = not coordinates
    _grid(chart, 1.0, lambda v: f"{v:.0%}")
    _x_labels(chart, series, slot)
    return chart


def daily_by_currency(daily: Iterable[Mapping[str, Any]]) -> dict[str, dict[date, list[int]]]:
    """``payment_analytics()["daily"]`` added up over providers, per currency and day.

    Values: ``[captured, refunded, paid, failed]``.
    """
    result: dict[str, dict[date, list[int]]] = {}
    for row in daily:
        day = date.fromisoformat(row["date"])
        totals = result.setdefault(row["currency"], {}).setdefault(day, [0, 0, 0, 0])
        totals[0] += row["amount_captured"]
        totals[1] += row["amount_refunded"]
        totals[2] += row["paid"]
        totals[3] += row["failed"]
    return result


__all__ = ["Chart", "daily_by_currency", "days", "rate_chart", "volume_chart"]
