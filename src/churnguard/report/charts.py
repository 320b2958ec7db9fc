"""The report's charts: matplotlib figures rendered to SVG text for inlining in the page.

Figures are built with :class:`matplotlib.figure.Figure` directly, never through pyplot, so no GUI
backend is touched and no global figure state leaks between calls; saving as SVG uses matplotlib's
own vector renderer, which needs no display (the same reason one picks Agg for raster output).
Text stays text in the SVG (``svg.fonttype = "none"``), so the browser draws it with its own fonts:
the files stay small and Chinese segment names show wherever the reader has a CJK font.

Every function takes plain arrays and returns one ``<svg …>`` element as a string.

>>> svg = importance_chart(pd.Series({"recency": 3.0, "frequency": 1.0}), label="importance")
>>> svg.startswith("<svg") and "recency" in svg
True
"""

from __future__ import annotations

import hashlib
import html
import io
import re
import warnings
from collections.abc import Iterator, Mapping

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter
from sklearn.metrics import precision_recall_curve, roc_curve

from churnguard.report.curves import Predictions, calibration_bins, gains

__all__ = [
    "TIER_COLOURS",
    "calibration_bins",
    "calibration_chart",
    "forest_chart",
    "gains_chart",
    "importance_chart",
    "pr_chart",
    "qini_chart",
    "roc_chart",
    "score_distribution_chart",
    "segment_chart",
]

TIER_COLOURS = {"high": "#c0392b", "medium": "#e6a23c", "low": "#3c9d5d"}
CHOSEN_COLOUR = "#1f5fbf"
ORACLE_COLOUR = "#222222"
# Other models get muted, distinct colours; the chosen one and the oracle stand out.
_OTHER_COLOURS = ["#8e6cc0", "#17a2b8", "#b5651d", "#7f8c8d", "#d35490", "#6b8e23", "#a0522d"]

_RC = {
    "svg.fonttype": "none",
    "svg.hashsalt": "churnguard-report",  # stable ids, so the same data gives the same file
    "font.size": 9.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "axes.titlesize": 10.5,
    "axes.titleweight": "bold",
    "legend.fontsize": 8.5,
    "legend.frameon": False,
}



def _new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def _to_svg(fig: Figure, *, label: str) -> str:
    buf = io.StringIO()
    with warnings.catch_warnings():
        # DejaVu lacks CJK glyphs; with fonttype "none" the browser draws the text anyway.
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    # Inline SVG in HTML needs no namespace declarations; dropping them leaves no URL in the page.
    text = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", text, count=2)
    # matplotlib names clip paths and markers by a hash of their geometry, and groups
    # "figure_1", "axes_1"...: ids two charts on one page would share. A prefix made from the
    # chart's own content keeps them apart and the page byte-for-byte reproducible.
    prefix = "c" + hashlib.sha1((label + text).encode()).hexdigest()[:8]
    text = re.sub(r'(\s)id="', rf'\1id="{prefix}-', text)
    text = text.replace("url(#", f"url(#{prefix}-")
    text = re.sub(r'href="#', f'href="#{prefix}-', text)
    return text.replace("<svg ", f'<svg role="img" aria-label="{html.escape(label)}" ', 1).strip()


def _style(name: str, chosen: str, others: list[str]) -> dict:
    if name == chosen:
        return {"color": CHOSEN_COLOUR, "lw": 2.6, "zorder": 5}
    if name == "oracle":
        return {"color": ORACLE_COLOUR, "lw": 1.6, "ls": "--", "zorder": 4}
    return {"color": _OTHER_COLOURS[others.index(name) % len(_OTHER_COLOURS)], "lw": 1.3,
            "alpha": 0.85, "zorder": 3}


def _ordered(predictions: Predictions, chosen: str) -> tuple[list[str], list[str]]:
    """Draw order: the others, the oracle, then the chosen model on top; ``others`` for colours."""
    others = [m for m in predictions if m not in (chosen, "oracle")]
    order = others + [m for m in ("oracle", chosen) if m in predictions]
    return order, others


def _label(name: str, chosen: str) -> str:
    if name == chosen:
        return f"{name} (chosen)"
    if name == "oracle":
        return "oracle (best possible)"
    return name


def _lines(predictions: Predictions, chosen: str) -> Iterator[tuple[tuple, str, dict]]:
    """Each model's (y, p), legend label and line style, in draw order."""
    order, others = _ordered(predictions, chosen)
    for name in order:
        yield predictions[name], _label(name, chosen), _style(name, chosen, others)


def roc_chart(predictions: Predictions, *, chosen: str) -> str:
    """ROC curves, one per model; each ``y_true`` must hold both classes."""
    with matplotlib.rc_context(_RC):
        fig = _new_figure(5.2, 4.4)
        ax = fig.add_subplot()
        for (y, p), label, style in _lines(predictions, chosen):
            fpr, tpr, _ = roc_curve(y, p)
            ax.plot(fpr, tpr, label=label, **style)
        ax.plot([0, 1], [0, 1], color="#999999", lw=1, ls=":", label="coin toss")
        ax.set(xlim=(0, 1), ylim=(0, 1.01),
               xlabel="share of staying customers flagged (false alarms)",
               ylabel="share of churners caught", title="ROC curve")
        ax.legend(loc="lower right")
        return _to_svg(fig, label="ROC curves of every model")


def pr_chart(predictions: Predictions, *, chosen: str, base_rate: float | None) -> str:
    """Precision–recall curves, one per model, with the base rate as the random-picking line."""
    with matplotlib.rc_context(_RC):
        fig = _new_figure(5.2, 4.4)
        ax = fig.add_subplot()
        for (y, p), label, style in _lines(predictions, chosen):
            precision, recall, _ = precision_recall_curve(y, p)
            ax.plot(recall, precision, label=label, drawstyle="steps-post", **style)
        if base_rate is not None and np.isfinite(base_rate):
            ax.axhline(base_rate, color="#999999", lw=1, ls=":", label="random picking")
        ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="share of churners caught (recall)",
               ylabel="share of flagged who churn (precision)", title="Precision–recall curve")
        ax.legend(loc="upper right")
        return _to_svg(fig, label="Precision-recall curves of every model")


def calibration_chart(predictions: Predictions, *, chosen: str, n_bins: int = 10) -> str:
    """Reliability diagram: the chosen model bold with bins sized by count, the others faint."""
    with matplotlib.rc_context(_RC):
        fig = _new_figure(5.6, 4.6)
        ax = fig.add_subplot()
        ax.plot([0, 1], [0, 1], color="#999999", lw=1, ls=":", label="perfectly calibrated")
        order, others = _ordered(predictions, chosen)
        for name in order:
            bins = calibration_bins(*predictions[name], n_bins=n_bins)
            style = _style(name, chosen, others)
            if name == chosen:
                ax.plot(bins["mean_predicted"], bins["observed"], marker="o", ms=0,
                        label=_label(name, chosen), **style)
                sizes = 20 + 180 * bins["count"] / bins["count"].max()
                ax.scatter(bins["mean_predicted"], bins["observed"], s=sizes, color=CHOSEN_COLOUR,
                           zorder=6, edgecolor="white", linewidth=0.8)
            else:
                style.update(alpha=0.35, lw=1.1)
                ax.plot(bins["mean_predicted"], bins["observed"], marker="o", ms=3,
                        label=_label(name, chosen), **style)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="predicted churn probability (bin average)",
               ylabel="share who actually churned",
               title=f"Calibration ({n_bins} bins; dot size = customers in bin)")
        ax.legend(loc="upper left")
        return _to_svg(fig, label="Calibration reliability diagram")


def gains_chart(predictions: Predictions, *, chosen: str) -> str:
    """Cumulative gains (share of churners reached vs share contacted) and the lift beside it."""
    with matplotlib.rc_context(_RC):
        fig = _new_figure(9.6, 4.2)
        gains_ax, lift_ax = fig.subplots(1, 2)
        order, others = _ordered(predictions, chosen)
        for name in order:
            x, g = (np.concatenate([[0.0], a]) for a in gains(*predictions[name]))
            style = _style(name, chosen, others)
            gains_ax.plot(x, g, label=_label(name, chosen), **style)
            start = max(1, int(0.01 * (len(x) - 1)))  # the first 1% is too noisy to read
            lift_ax.plot(x[start:], g[start:] / x[start:], **style)
        gains_ax.plot([0, 1], [0, 1], color="#999999", lw=1, ls=":", label="random order")
        lift_ax.axhline(1.0, color="#999999", lw=1, ls=":")
        for ax in (gains_ax, lift_ax):
            ax.axvline(0.1, color="#bbbbbb", lw=0.8)
            ax.set_xlim(0, 1)
            ax.set_xlabel("share of customers contacted, highest risk first")
        gains_ax.set(ylim=(0, 1.01), ylabel="share of all churners reached",
                     title="Cumulative gains")
        lift_ax.set(ylim=(0, None), ylabel="times better than random", title="Lift")
        gains_ax.legend(loc="lower right")
        return _to_svg(fig, label="Cumulative gains and lift")


def score_distribution_chart(p_churn: np.ndarray, tiers: np.ndarray) -> str:
    """Histogram of predicted churn probability, stacked by risk tier."""
    p = np.asarray(p_churn, dtype=float)
    tiers = np.asarray(tiers, dtype=object)
    with matplotlib.rc_context(_RC):
        fig = _new_figure(8.0, 3.6)
        ax = fig.add_subplot()
        edges = np.linspace(0, 1, 41)
        names = [t for t in TIER_COLOURS if (tiers == t).any()]
        extra = sorted({str(t) for t in tiers} - set(TIER_COLOURS))
        data = [p[tiers == t] for t in names] + [p[tiers.astype(str) == t] for t in extra]
        colours = [TIER_COLOURS[t] for t in names] + ["#999999"] * len(extra)
        labels = [f"{t} ({len(d):,})" for t, d in zip(names + extra, data)]
        if data:
            ax.hist(data, bins=edges, stacked=True, color=colours, label=labels,
                    edgecolor="white", linewidth=0.4)
            ax.legend(title="risk tier", loc="upper right")
        ax.set(xlim=(0, 1), xlabel="predicted churn probability", ylabel="customers",
               title="How risk is spread over customers")
        return _to_svg(fig, label="Score distribution by risk tier")


def importance_chart(importance: pd.Series, *, label: str = "share of total gain") -> str:
    """Horizontal bars, largest on top, as a share of the total of the series given."""
    values = importance.astype(float)
    total = values.abs().sum()
    share = values / total if total > 0 else values * 0
    with matplotlib.rc_context(_RC):
        fig = _new_figure(7.6, 0.6 + 0.32 * max(len(values), 1))
        ax = fig.add_subplot()
        ax.barh(np.arange(len(share))[::-1], share.to_numpy(), color=CHOSEN_COLOUR, height=0.7)
        ax.set_yticks(np.arange(len(share))[::-1], [str(i) for i in share.index])
        ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_xlabel(label)
        ax.grid(axis="y", visible=False)
        return _to_svg(fig, label="Global feature importance")


def segment_chart(table: pd.DataFrame, *, column: str, overall_rate: float) -> str:
    """Churn rate per value of one segment column, with customer counts on the bars.

    ``table`` has the index = segment values in display order and columns ``customers`` and
    ``churn_rate``.
    """
    with matplotlib.rc_context(_RC):
        fig = _new_figure(7.6, 0.9 + 0.36 * max(len(table), 1))
        ax = fig.add_subplot()
        ypos = np.arange(len(table))[::-1]
        rates = table["churn_rate"].to_numpy(dtype=float)
        ax.barh(ypos, rates, color="#5b7db1", height=0.7)
        ax.set_yticks(ypos, [str(v) for v in table.index])
        for y, rate, n in zip(ypos, rates, table["customers"]):
            ax.text(rate, y, f"  {rate:.1%} · {int(n):,} customers", va="center", fontsize=8.5)
        xlabel = "share who churned"
        if np.isfinite(overall_rate):
            # Said in the axis label, not a legend: a legend box would cover the bar labels.
            ax.axvline(overall_rate, color="#c0392b", lw=1.2, ls="--")
            xlabel += f" (red dashed line: all customers, {overall_rate:.1%})"
        top = float(np.nanmax(rates)) if len(rates) else 1.0
        ax.set_xlim(0, min(1.0, top * 1.45 + 0.02) if top > 0 else 1.0)
        ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_xlabel(xlabel)
        ax.set_title(f"Churn rate by {column}")
        ax.grid(axis="y", visible=False)
        return _to_svg(fig, label=f"Churn rate by {column}")


def _literal(text: object) -> str:
    """Text from the data drawn as is: a ``$`` would otherwise start matplotlib's mathtext."""
    return str(text).replace("$", r"\$")


def qini_chart(curves: Mapping[str, Mapping[str, list[float]]], *, action: str,
               chosen: str) -> str:
    """Qini curves of one action, one per learner (``{learner: {"x": [...], "qini": [...]}}``),
    with the random-targeting diagonal from (0, 0) to (1, Q(N)) (Radcliffe 2007; metrics.py).

    >>> curve = {"x": [0.0, 0.5, 1.0], "qini": [0.0, 0.03, 0.04]}
    >>> svg = qini_chart({"x_learner": curve}, action="coupon_10", chosen="x_learner")
    >>> svg.startswith("<svg") and "Qini curve of coupon_10" in svg
    True
    """
    with matplotlib.rc_context(_RC):
        fig = _new_figure(3.9, 3.2)
        ax = fig.add_subplot()
        order, others = _ordered(curves, chosen)
        end = None
        for name in order:
            x = np.asarray(curves[name].get("x", []), dtype=float)
            q = np.asarray(curves[name].get("qini", []), dtype=float)
            if x.size == 0 or x.size != q.size:
                continue
            ax.plot(x, q, label=_literal(_label(name, chosen)), **_style(name, chosen, others))
            if name == chosen or end is None:
                end = float(q[-1])
        if end is not None and np.isfinite(end):
            ax.plot([0, 1], [0, end], color="#999999", lw=1, ls=":", label="random targeting")
        ax.axhline(0.0, color="#cccccc", lw=0.8)
        ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
        ax.set(xlim=(0, 1), xlabel="share targeted, highest predicted effect first",
               ylabel="extra outcomes, % of treated", title=_literal(action))
        ax.legend(loc="best")
        return _to_svg(fig, label=f"Qini curve of {action}")


def forest_chart(rows: list[tuple[str, float, float | None, float | None]], *,
                 title: str, label: str) -> str:
    """One row per group: the point estimate of a difference and its interval as a bar, with the
    zero line. ``rows`` are ``(name, estimate, low, high)``; a row without an interval is drawn as
    a hollow point. Green: the interval lies above zero; red: below; grey: it spans zero.

    >>> svg = forest_chart([("coupon_10", 0.05, 0.01, 0.09), ("all actions", 0.03, None, None)],
    ...                    title="Incremental retention", label="forest")
    >>> svg.startswith("<svg") and "coupon_10" in svg
    True
    """
    with matplotlib.rc_context(_RC):
        fig = _new_figure(6.4, 1.1 + 0.42 * max(len(rows), 1))
        ax = fig.add_subplot()
        ypos = np.arange(len(rows))[::-1]
        for y, (_, estimate, low, high) in zip(ypos, rows):
            if low is None or high is None:
                ax.plot([estimate], [y], marker="o", ms=6, mfc="white", mec="#666666", ls="")
                continue
            colour = "#3c9d5d" if low > 0 else "#c0392b" if high < 0 else "#7f8c8d"
            ax.plot([low, high], [y, y], color=colour, lw=2.2, solid_capstyle="butt")
            ax.plot([estimate], [y], marker="s", ms=6, color=colour, ls="")
        ax.axvline(0.0, color="#444444", lw=0.9, ls="--")
        ax.set_yticks(ypos, [_literal(name) for name, *_ in rows])
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_xlabel("change in retention, treated minus control (percentage points)")
        ax.set_title(_literal(title))
        ax.grid(axis="y", visible=False)
        return _to_svg(fig, label=label)
