"""The model-quality page: the latest backtest's leaderboard, ROC, calibration and lift, the
drift of the scores and of the champion's most important inputs, and the model versions.

The curves come from the backtest's stored test predictions (``backtest_predictions``), as in the
HTML report. Drift compares the two newest scoring dates of the champion; with one scoring date
the reference is the backtest's test cutoff (the population the model was judged on).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from churnguard import monitor
from churnguard.backtests import latest_backtest
from churnguard.monitor import median, stability
from churnguard.registry import (
    CHAMPION,
    alias_history,
    alias_version,
    get_model_version,
    list_models,
)
from churnguard.report.curves import usable
from churnguard.service.dashboard import charts
from churnguard.service.dashboard.i18n import t
from churnguard.service.dashboard.layout import (
    PageContext, chart, count, day, e, minute, note, num, page, pct, probability, section,
    table)
from churnguard.service.dashboard.memo import Memo
from churnguard.service.state import ServiceState
from churnguard.store import Store

DRIFT_FEATURES = 6
# (key in the backtest document, higher is better, how to show it)
METRICS = (("roc_auc", True, "num"), ("pr_auc", True, "num"), ("brier", False, "num"),
           ("ece", False, "num"), ("lift_at_10", True, "x"), ("recall_at_10", True, "pct"))


def _split(predictions: pd.DataFrame) -> tuple[dict, dict]:
    """Per model (y, p) with both classes (ranking curves) and with any rows (calibration)."""
    return usable({str(name): (group["y_true"].to_numpy(dtype=float),
                               group["p_churn"].to_numpy(dtype=float))
                   for name, group in predictions.groupby("model", sort=False)})


def _metric(value: object, kind: str) -> str:
    if kind == "pct":
        return pct(value)
    if kind == "x" and value is not None:
        return "×" + num(value, 2)
    return num(value)


def _leaderboard(lang: str, document: dict, chosen: str | None) -> str:
    models = [m for m in document.get("models", []) if isinstance(m, dict) and "name" in m]
    ordered = [m for m in models if m["name"] != "oracle"] + \
              [m for m in models if m["name"] == "oracle"]
    best = {}
    for key, higher, _ in METRICS:
        values = [float(m[key]) for m in models if m["name"] != "oracle"
                  and isinstance(m.get(key), int | float) and np.isfinite(m[key])]
        best[key] = (max(values) if higher else min(values)) if values else None
    rows = []
    for m in ordered:
        cls = "chosen" if m["name"] == chosen else "oracle" if m["name"] == "oracle" else ""
        label = e(m["name"])
        if m["name"] == chosen:
            label += f' <span class="badge">{e(t(lang, "champion"))}</span>'
        elif m["name"] == "oracle":
            label += f' <span class="muted">({e(t(lang, "best_possible"))})</span>'
        cells = []
        for key, _, kind in METRICS:
            value = m.get(key)
            is_best = (m["name"] != "oracle" and best[key] is not None
                       and isinstance(value, int | float) and np.isclose(value, best[key]))
            cells.append(f'<td class="num{" best" if is_best else ""}">'
                         f"{e(_metric(value, kind))}</td>")
        rows.append(f'<tr class="{cls}"><th scope="row">{label}</th>{"".join(cells)}</tr>')
    headers = [e(t(lang, "col_model"))] + [e(t(lang, "metric_" + k)) for k, _, _ in METRICS]
    summary = t(lang, "backtest_summary", cutoff=document.get("test_cutoff", "—"),
                n=count(document.get("n_test")), rate=pct(document.get("base_rate")),
                horizon=document.get("horizon_days", "—"))
    return (table(headers, rows, cls="leaderboard", empty=e(t(lang, "no_models")))
            + f'<p class="muted">{e(summary)}</p>')


# -- drift ----------------------------------------------------------------------------------------
def _important_features(service: ServiceState, store: Store, version: str) -> list[str]:
    champion = service.risk.champion(store)
    model = champion.model if champion is not None and champion.version == version else None
    names: list[str] = []
    if model is not None and hasattr(model, "feature_importance"):
        importance = model.feature_importance()
        names = [str(n) for n in importance.sort_values(ascending=False).index]
    if not names:
        names = list(get_model_version(store, version).features)
    return monitor.important_features(names, n=DRIFT_FEATURES)


def _drift(service: ServiceState, store: Store, memo: Memo, *, version: str | None,
           run_id: str | None, document: dict, predictions: pd.DataFrame,
           chosen: str | None) -> monitor.Drift | None:
    """Score and feature drift (aggregates only), kept while the scoring dates hold."""
    if version is None:
        return None
    dates = monitor.scoring_dates(store, version)
    if not dates:
        return None
    backtest = None
    if chosen is not None and document.get("test_cutoff") and \
            (predictions["model"] == chosen).any():
        backtest = (dt.datetime.fromisoformat(str(document["test_cutoff"])),
                    predictions.loc[predictions["model"] == chosen, "p_churn"].to_numpy(float))
    return memo.get("drift", (version, tuple(dates), run_id), lambda: monitor.drift(
        store, definition=service.project.config.churn, version=version, backtest=backtest,
        features=lambda: _important_features(service, store, version)))


def _drift_section(lang: str, drift: monitor.Drift | None) -> str:
    if drift is None:
        return note(e(t(lang, "no_drift")))
    ref = day(drift.reference)
    cur = day(drift.current)
    source = t(lang, "drift_from_" + drift.source, reference=ref, current=cur)
    score_state = stability(drift.score_psi)
    figure = charts.score_drift(
        drift.p_old, drift.p_new, lang=lang,
        reference_label=t(lang, "drift_reference", date=ref),
        current_label=t(lang, "drift_current", date=cur))
    rows = [f'<tr><td>{e(t(lang, "drift_scores"))}</td><td class="num">{num(drift.score_psi)}'
            f'</td><td><span class="state state-{score_state}">'
            f'{e(t(lang, "stability_" + score_state))}</span></td><td class="num">'
            f'{e(probability(median(drift.p_old)))}</td><td class="num">'
            f'{e(probability(median(drift.p_new)))}'
            f"</td></tr>"]
    for f in drift.features:
        state = stability(f.psi)
        rows.append(f'<tr><td><code>{e(f.feature)}</code></td><td class="num">'
                    f'{num(f.psi)}</td><td><span class="state state-{state}">'
                    f'{e(t(lang, "stability_" + state))}</span></td><td class="num">'
                    f'{num(f.reference_median, 2)}</td><td class="num">'
                    f'{num(f.current_median, 2)}</td></tr>')
    headers = [e(t(lang, h)) for h in ("col_input", "col_psi", "col_stability",
                                       "col_median_reference", "col_median_current")]
    return (f'<p class="muted">{e(source)}</p>'
            + chart("chart-score-drift", figure)
            + table(headers, rows, cls="drift")
            + f'<p class="muted">{e(t(lang, "psi_explained"))}</p>')


def _versions(lang: str, store: Store) -> str:
    champion = alias_version(store, CHAMPION)
    rows = []
    for v in list_models(store):
        badge = f' <span class="badge">{e(t(lang, "champion"))}</span>' if v.version == champion \
            else ""
        window = v.data_window if isinstance(v.data_window, dict) else {}
        validation = ((v.metrics or {}).get("validation") or {}) if isinstance(v.metrics, dict) \
            else {}
        rows.append(f"<tr><td><code>{e(v.version)}</code>{badge}</td><td>{e(v.name)}</td>"
                    f"<td>{e(minute(v.created_at))}</td>"
                    f"<td>{e(window.get('validation_cutoff'))}</td>"
                    f'<td class="num">{num(validation.get("roc_auc"))}</td></tr>')
    history = [f"<tr><td>{e(minute(h['changed_at']))}</td><td><code>{e(h['version'])}</code></td>"
               f"<td><code>{e(h['previous_version'])}</code></td><td>{e(h['reason'])}</td></tr>"
               for h in reversed(alias_history(store, CHAMPION))]
    return (table([e(t(lang, h)) for h in ("col_version", "col_model", "col_created",
                                            "col_validation_cutoff", "col_validation_auc")],
                  rows, empty=e(t(lang, "no_models")))
            + f"<h3>{e(t(lang, 'champion_history'))}</h3>"
            + table([e(t(lang, h)) for h in ("col_time", "col_version", "col_previous",
                                              "col_reason")], history,
                    empty=e(t(lang, "no_history"))))


def render(ctx: PageContext, service: ServiceState, store: Store, memo: Memo) -> str:
    lang = ctx.lang
    title = t(lang, "quality_title")
    version = alias_version(store, CHAMPION)
    chosen = get_model_version(store, version).name if version else None
    run_id, document, predictions = latest_backtest(store) or (None, {}, pd.DataFrame(
        columns=["model", "user_id", "y_true", "p_churn"]))
    if run_id is None:
        backtest_html = note(e(t(lang, "no_backtest")))
    else:
        ranked, calibratable = _split(predictions)
        curves = []
        if ranked:
            curves.append(chart("chart-roc", charts.roc(ranked, chosen=chosen or "", lang=lang),
                                caption=e(t(lang, "caption_roc"))))
        if calibratable:
            curves.append(chart("chart-calibration", charts.calibration(
                calibratable, chosen=chosen or "", lang=lang),
                caption=e(t(lang, "caption_calibration"))))
        lift_html = (chart("chart-lift", charts.lift(ranked, chosen=chosen or "", lang=lang),
                           caption=e(t(lang, "caption_lift"))) if ranked
                     else note(e(t(lang, "no_curves"))))
        backtest_html = (_leaderboard(lang, document, chosen)
                         + f'<div class="pair">{"".join(curves)}</div>' + lift_html)
    drift = _drift(service, store, memo, version=version, run_id=run_id, document=document,
                   predictions=predictions, chosen=chosen)
    body = "\n" + "\n".join([
        section(t(lang, "section_leaderboard"), backtest_html),
        section(t(lang, "section_drift"), _drift_section(lang, drift)),
        section(t(lang, "section_versions"), _versions(lang, store))]) + "\n"
    return page(ctx, title=title, active="quality", body=body, lead=e(t(lang, "quality_lead")))


__all__ = ["render"]
