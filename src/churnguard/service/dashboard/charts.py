"""Plotly figures as plain dicts (``{"data": [...], "layout": {...}}``), drawn by the page's
script with the Plotly bundle served from the installed package.

The curves are computed here from the numbers the store holds (the backtest's test predictions,
the scores, the measurements) with the same definitions as the HTML report
(:mod:`churnguard.report.curves`); long curves are thinned to a few hundred points, which a
reader cannot tell apart, so pages stay small. Plotly reads a little HTML in its labels (``<b>``,
``<a href>``), so every name from the store goes through :func:`_text` first.

>>> fig = roc({"gbdt": (np.array([0, 1, 1, 0]), np.array([0.2, 0.9, 0.6, 0.4]))},
...           chosen="gbdt", lang="en")
>>> fig["data"][0]["name"], fig["data"][0]["y"][-1]
('gbdt (champion)', 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

import numpy as np
from sklearn.metrics import roc_curve

from churnguard.report.charts import CHOSEN_COLOUR, ORACLE_COLOUR, TIER_COLOURS
from churnguard.report.curves import Predictions, calibration_bins, gains
from churnguard.report.formatting import probability
from churnguard.service.dashboard.i18n import event_name, t

MAX_POINTS = 300
_OTHERS = ["#8e6cc0", "#17a2b8", "#b5651d", "#7f8c8d", "#d35490", "#6b8e23"]
_GREY = "#999999"
_FONT = ('system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "Noto Sans CJK SC", '
         '"PingFang SC", "Microsoft YaHei", sans-serif')


def _text(value: object) -> str:
    """A name from the store as Plotly label text: its markup shown, never obeyed.

    >>> _text("<b>x</b> & y")
    '&lt;b&gt;x&lt;/b&gt; &amp; y'
    """
    return escape(str(value), quote=False)


def _values(values: object) -> list[float | None]:
    """A JSON-safe list: NaN and infinities become None (gaps in a line)."""
    array = np.asarray(values, dtype=float).ravel()
    return [float(v) if np.isfinite(v) else None for v in array]


def _thin(*arrays: np.ndarray) -> list[np.ndarray]:
    n = len(arrays[0])
    if n <= MAX_POINTS:
        return list(arrays)
    keep = np.unique(np.linspace(0, n - 1, MAX_POINTS).round().astype(int))
    return [a[keep] for a in arrays]


def _layout(title: str, *, x: str = "", y: str = "", height: int = 340, **extra: object) -> dict:
    layout = {
        "title": {"text": title, "font": {"size": 15}, "x": 0.01},
        "height": height,
        "margin": {"l": 60, "r": 20, "t": 44, "b": 50},
        "font": {"family": _FONT, "size": 12, "color": "#1d2330"},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "xaxis": {"title": {"text": x}, "gridcolor": "#eef0f3", "zeroline": False},
        "yaxis": {"title": {"text": y}, "gridcolor": "#eef0f3", "zeroline": False},
        "legend": {"orientation": "h", "y": -0.22, "x": 0},
        "hoverlabel": {"font": {"family": _FONT}},
    }
    layout.update(extra)
    return layout


def _style(name: str, chosen: str, index: int) -> dict:
    if name == chosen:
        return {"color": CHOSEN_COLOUR, "width": 3}
    if name == "oracle":
        return {"color": ORACLE_COLOUR, "width": 1.6, "dash": "dash"}
    return {"color": _OTHERS[index % len(_OTHERS)], "width": 1.5}


def _label(name: str, chosen: str, lang: str) -> str:
    if name == chosen:
        return f"{_text(name)} ({t(lang, 'champion')})"
    if name == "oracle":
        return f"oracle ({t(lang, 'best_possible')})"
    return _text(name)


def _order(predictions: Predictions, chosen: str) -> list[str]:
    """Others first, then the oracle, the chosen model on top."""
    return ([m for m in predictions if m not in (chosen, "oracle")]
            + [m for m in ("oracle", chosen) if m in predictions])


# -- overview -------------------------------------------------------------------------------------
def risk_histogram(bins: Sequence[tuple[int, str, int]], *, n_bins: int, lang: str) -> dict:
    """Customers per probability bin, stacked by risk tier. ``bins``: (bin, tier, customers)."""
    centres = (np.arange(n_bins) + 0.5) / n_bins
    data = []
    for tier in ("low", "medium", "high"):
        counts = np.zeros(n_bins)
        for b, name, n in bins:
            if name == tier and 0 <= b < n_bins:
                counts[b] += n
        if counts.any():
            data.append({"type": "bar", "x": _values(centres), "y": _values(counts),
                         "name": t(lang, "tier_" + tier), "width": 1.0 / n_bins * 0.95,
                         "marker": {"color": TIER_COLOURS[tier]},
                         "hovertemplate": "%{x:.0%}: %{y:,} <extra>%{fullData.name}</extra>"})
    layout = _layout(t(lang, "chart_risk_distribution"), x=t(lang, "axis_p_churn"),
                     y=t(lang, "axis_customers"), barmode="stack")
    layout["xaxis"].update(range=[0, 1], tickformat=".0%")
    return {"data": data, "layout": layout}


def churn_trend(cutoffs: Sequence[dict], scoring: Sequence[dict], *, lang: str) -> dict:
    """Observed churn rate per cutoff (labels known) and mean predicted churn per scoring date."""
    known = [r for r in cutoffs if r.get("churn_rate") is not None]
    data = [{"type": "scatter", "mode": "lines+markers", "name": t(lang, "series_observed"),
             "x": [r["cutoff"] for r in known], "y": _values([r["churn_rate"] for r in known]),
             "line": {"color": "#5b7db1", "width": 2.5},
             "customdata": [r["population"] for r in known],
             "hovertemplate": "%{x|%Y-%m-%d}: %{y:.1%} (%{customdata:,})<extra></extra>"}]
    if scoring:
        data.append({"type": "scatter", "mode": "lines+markers",
                     "name": t(lang, "series_predicted"),
                     "x": [r["as_of"] for r in scoring],
                     "y": _values([r["mean_p"] for r in scoring]),
                     "line": {"color": TIER_COLOURS["high"], "width": 2, "dash": "dot"},
                     "hovertemplate": "%{x|%Y-%m-%d}: %{y:.1%}<extra></extra>"})
    layout = _layout(t(lang, "chart_churn_trend"), x=t(lang, "axis_cutoff"),
                     y=t(lang, "axis_churn_rate"))
    layout["yaxis"].update(tickformat=".0%", rangemode="tozero")
    return {"data": data, "layout": layout}


# -- customer -------------------------------------------------------------------------------------
def risk_over_time(points: Sequence[dict], now: dict | None, *, high: float, medium: float,
                   lang: str) -> dict:
    """The customer's scored probability at each scoring date, and now."""
    data = []
    if points:
        data.append({"type": "scatter", "mode": "lines+markers", "name": t(lang, "series_scored"),
                     "x": [p["as_of"] for p in points],
                     "y": _values([p["p_churn"] for p in points]),
                     # the hover text is written here, so that it never reads 100% or 0%
                     "customdata": [probability(p["p_churn"]) for p in points],
                     "line": {"color": CHOSEN_COLOUR, "width": 2.5},
                     "hovertemplate": "%{x|%Y-%m-%d}: %{customdata}<extra></extra>"})
    if now is not None:
        data.append({"type": "scatter", "mode": "markers", "name": t(lang, "series_now"),
                     "x": [now["as_of"]], "y": _values([now["p_churn"]]),
                     "customdata": [probability(now["p_churn"])],
                     "marker": {"color": TIER_COLOURS["high"], "size": 12, "symbol": "diamond"},
                     "hovertemplate": "%{x|%Y-%m-%d %H:%M}: %{customdata}<extra></extra>"})
    layout = _layout(t(lang, "chart_risk_over_time"), x=t(lang, "axis_date"),
                     y=t(lang, "axis_p_churn"), height=300)
    layout["yaxis"].update(range=[0, 1], tickformat=".0%")
    layout["shapes"] = [
        {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": level, "y1": level,
         "line": {"color": TIER_COLOURS[tier], "width": 1, "dash": "dot"}}
        for tier, level in (("high", high), ("medium", medium))]
    return {"data": data, "layout": layout}


def event_timeline(events: Sequence[dict], campaigns: Sequence[dict], *, lang: str) -> dict:
    """One dot per event on a row per event type (orders sized by amount); campaign contacts
    as vertical lines."""
    types = sorted({ev["type"] for ev in events}, key=lambda s: (s != "order", s))
    data = []
    for k, kind in enumerate(types):
        mine = [ev for ev in events if ev["type"] == kind]
        amounts = np.array([ev.get("amount") or 0.0 for ev in mine], dtype=float)
        size = (7 + 14 * np.sqrt(amounts / amounts.max())) if amounts.max() > 0 else np.full(
            len(mine), 8.0)
        label = _text(event_name(lang, kind))
        data.append({"type": "scatter", "mode": "markers", "name": label,
                     "x": [ev["ts"] for ev in mine], "y": [label] * len(mine),
                     "marker": {"size": _values(size), "opacity": 0.75,
                                "color": CHOSEN_COLOUR if kind == "order" else
                                _OTHERS[k % len(_OTHERS)]},
                     "customdata": [_text(ev.get("detail") or "") for ev in mine],
                     "hovertemplate": "%{x|%Y-%m-%d %H:%M} %{customdata}<extra>%{y}</extra>"})
    layout = _layout(t(lang, "chart_timeline"), x=t(lang, "axis_date"), height=340,
                     showlegend=False)
    layout["margin"]["l"] = 110
    layout["shapes"] = [{"type": "line", "yref": "paper", "y0": 0, "y1": 1, "x0": c["at"],
                         "x1": c["at"], "line": {"color": "#e6a23c", "width": 2, "dash": "dash"}}
                        for c in campaigns]
    layout["annotations"] = [{"x": c["at"], "yref": "paper", "y": 1.02, "text": _text(c["label"]),
                              "showarrow": False, "font": {"size": 10, "color": "#a36b00"},
                              "yanchor": "bottom"} for c in campaigns]
    return {"data": data, "layout": layout}


# -- model quality --------------------------------------------------------------------------------
def roc(predictions: Predictions, *, chosen: str, lang: str) -> dict:
    """ROC curves, one per model with both classes in its test labels."""
    data = []
    for i, name in enumerate(_order(predictions, chosen)):
        y, p = predictions[name]
        fpr, tpr, _ = roc_curve(y, p)
        fpr, tpr = _thin(fpr, tpr)
        data.append({"type": "scatter", "mode": "lines", "name": _label(name, chosen, lang),
                     "x": _values(fpr), "y": _values(tpr), "line": _style(name, chosen, i),
                     "hovertemplate": "%{x:.0%} → %{y:.0%}<extra>%{fullData.name}</extra>"})
    data.append({"type": "scatter", "mode": "lines", "name": t(lang, "series_coin"),
                 "x": [0, 1], "y": [0, 1], "line": {"color": _GREY, "width": 1, "dash": "dot"},
                 "hoverinfo": "skip"})
    layout = _layout(t(lang, "chart_roc"), x=t(lang, "axis_fpr"), y=t(lang, "axis_tpr"),
                     height=380)
    layout["xaxis"].update(range=[0, 1], tickformat=".0%")
    layout["yaxis"].update(range=[0, 1.01], tickformat=".0%")
    return {"data": data, "layout": layout}


def calibration(predictions: Predictions, *, chosen: str, lang: str, n_bins: int = 10) -> dict:
    """Reliability diagram: observed churn share against the mean prediction per bin."""
    data = [{"type": "scatter", "mode": "lines", "name": t(lang, "series_perfect"),
             "x": [0, 1], "y": [0, 1], "line": {"color": _GREY, "width": 1, "dash": "dot"},
             "hoverinfo": "skip"}]
    for i, name in enumerate(_order(predictions, chosen)):
        bins = calibration_bins(*predictions[name], n_bins=n_bins)
        style = _style(name, chosen, i)
        size = (6 + 16 * np.sqrt(bins["count"] / bins["count"].max())) if name == chosen else 6
        data.append({"type": "scatter", "mode": "lines+markers",
                     "name": _label(name, chosen, lang),
                     "x": _values(bins["mean_predicted"]), "y": _values(bins["observed"]),
                     "line": style, "opacity": 1.0 if name == chosen else 0.5,
                     "marker": {"size": _values(size) if name == chosen else 6,
                                "color": style["color"]},
                     "customdata": [int(c) for c in bins["count"]],
                     "hovertemplate": "%{x:.0%} → %{y:.0%} (%{customdata:,})"
                                      "<extra>%{fullData.name}</extra>"})
    layout = _layout(t(lang, "chart_calibration"), x=t(lang, "axis_predicted"),
                     y=t(lang, "axis_observed"), height=380)
    layout["xaxis"].update(range=[0, 1], tickformat=".0%")
    layout["yaxis"].update(range=[0, 1], tickformat=".0%")
    return {"data": data, "layout": layout}


def lift(predictions: Predictions, *, chosen: str, lang: str) -> dict:
    """Cumulative gains (left) and lift over random contact (right), by share contacted."""
    data = []
    for i, name in enumerate(_order(predictions, chosen)):
        share, reached = gains(*predictions[name])
        start = max(1, int(0.01 * len(share)))  # the first 1% is too noisy to read
        share, reached = _thin(share[start - 1:], reached[start - 1:])
        style = _style(name, chosen, i)
        label = _label(name, chosen, lang)
        data.append({"type": "scatter", "mode": "lines", "name": label, "legendgroup": name,
                     "x": _values(share), "y": _values(reached), "line": style,
                     "hovertemplate": "%{x:.0%} → %{y:.0%}<extra>%{fullData.name}</extra>"})
        data.append({"type": "scatter", "mode": "lines", "name": label, "legendgroup": name,
                     "showlegend": False, "xaxis": "x2", "yaxis": "y2",
                     "x": _values(share), "y": _values(reached / share), "line": style,
                     "hovertemplate": "%{x:.0%}: ×%{y:.2f}<extra>%{fullData.name}</extra>"})
    data.append({"type": "scatter", "mode": "lines", "name": t(lang, "series_random"),
                 "x": [0, 1], "y": [0, 1], "line": {"color": _GREY, "width": 1, "dash": "dot"},
                 "hoverinfo": "skip"})
    data.append({"type": "scatter", "mode": "lines", "showlegend": False, "xaxis": "x2",
                 "yaxis": "y2", "x": [0, 1], "y": [1, 1], "hoverinfo": "skip",
                 "line": {"color": _GREY, "width": 1, "dash": "dot"}})
    layout = _layout(t(lang, "chart_lift"), height=380)
    axis = {"gridcolor": "#eef0f3", "zeroline": False, "tickformat": ".0%", "range": [0, 1]}
    layout["xaxis"] = {**axis, "domain": [0, 0.45],
                       "title": {"text": t(lang, "axis_contacted")}}
    layout["yaxis"] = {**axis, "range": [0, 1.01], "title": {"text": t(lang, "axis_reached")}}
    layout["xaxis2"] = {**axis, "domain": [0.57, 1], "anchor": "y2",
                        "title": {"text": t(lang, "axis_contacted")}}
    layout["yaxis2"] = {"gridcolor": "#eef0f3", "zeroline": False, "anchor": "x2",
                        "rangemode": "tozero", "title": {"text": t(lang, "axis_lift")}}
    return {"data": data, "layout": layout}


def score_drift(reference: np.ndarray, current: np.ndarray, *, reference_label: str,
                current_label: str, lang: str, n_bins: int = 20) -> dict:
    """The two score distributions as shares per probability bin, side by side."""
    edges = np.linspace(0, 1, n_bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    data = []
    for values, label, colour in ((reference, reference_label, "#9aa5b1"),
                                  (current, current_label, CHOSEN_COLOUR)):
        counts, _ = np.histogram(np.clip(values, 0, 1), bins=edges)
        share = counts / max(counts.sum(), 1)
        data.append({"type": "bar", "name": _text(label), "x": _values(centres),
                     "y": _values(share),
                     "marker": {"color": colour},
                     "hovertemplate": "%{x:.0%}: %{y:.1%}<extra>%{fullData.name}</extra>"})
    layout = _layout(t(lang, "chart_score_drift"), x=t(lang, "axis_p_churn"),
                     y=t(lang, "axis_share"), barmode="group", height=320)
    layout["xaxis"].update(range=[0, 1], tickformat=".0%")
    layout["yaxis"].update(tickformat=".0%")
    return {"data": data, "layout": layout}


# -- campaigns ------------------------------------------------------------------------------------
def budget_curve(curve: Sequence[dict], *, lang: str) -> dict:
    """Expected saves and incremental margin as the budget grows (diminishing returns)."""
    x = [c["budget"] for c in curve]
    data = [{"type": "scatter", "mode": "lines+markers", "name": t(lang, "series_saves"),
             "x": _values(x), "y": _values([c["expected_saves"] for c in curve]),
             "line": {"color": "#3c9d5d", "width": 2.5},
             "hovertemplate": "%{x:,.0f}: %{y:.1f}<extra>%{fullData.name}</extra>"},
            {"type": "scatter", "mode": "lines", "name": t(lang, "series_margin"),
             "x": _values(x), "y": _values([c["expected_margin"] for c in curve]),
             "yaxis": "y2", "line": {"color": CHOSEN_COLOUR, "width": 1.5, "dash": "dot"},
             "hovertemplate": "%{x:,.0f}: %{y:,.2f}<extra>%{fullData.name}</extra>"}]
    layout = _layout(t(lang, "chart_budget_curve"), x=t(lang, "axis_budget"),
                     y=t(lang, "axis_saves"), height=320)
    layout["yaxis"].update(rangemode="tozero")
    layout["yaxis2"] = {"overlaying": "y", "side": "right", "rangemode": "tozero",
                        "showgrid": False, "title": {"text": t(lang, "axis_margin")}}
    layout["margin"]["r"] = 60
    layout["shapes"] = [{"type": "line", "yref": "paper", "y0": 0, "y1": 1, "x0": 0, "x1": 0,
                         "line": {"color": "#c0392b", "width": 1.5}}]
    return {"data": data, "layout": layout}


def forest(rows: Sequence[tuple[str, float, float | None, float | None]], *, title: str,
           lang: str) -> dict:
    """Incremental retention per action with its confidence interval, and the zero line."""
    names = [_text(r[0]) for r in rows]
    estimate = np.array([r[1] for r in rows], dtype=float)
    low = np.array([np.nan if r[2] is None else r[2] for r in rows], dtype=float)
    high = np.array([np.nan if r[3] is None else r[3] for r in rows], dtype=float)
    colours = ["#3c9d5d" if lo > 0 else "#c0392b" if hi < 0 else "#7f8c8d"
               for lo, hi in zip(np.nan_to_num(low, nan=-1), np.nan_to_num(high, nan=1))]
    data = [{"type": "scatter", "mode": "markers", "orientation": "h", "name": title,
             "x": _values(estimate), "y": names,
             "error_x": {"type": "data", "symmetric": False,
                         "array": _values(np.nan_to_num(high - estimate, nan=0.0)),
                         "arrayminus": _values(np.nan_to_num(estimate - low, nan=0.0)),
                         "thickness": 2.2, "width": 6},
             "marker": {"size": 10, "symbol": "square", "color": colours},
             "hovertemplate": "%{y}: %{x:+.1%}<extra></extra>"}]
    layout = _layout(title, x=t(lang, "axis_incremental_retention"),
                     height=120 + 46 * max(len(rows), 1), showlegend=False)
    layout["xaxis"].update(tickformat="+.0%", zeroline=True, zerolinecolor="#444444")
    layout["yaxis"].update(automargin=True, autorange="reversed")
    layout["margin"]["l"] = 150
    return {"data": data, "layout": layout}
