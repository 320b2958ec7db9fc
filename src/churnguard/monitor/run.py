"""One monitoring pass over a store: :func:`run_monitor` and its :class:`MonitorReport`.

* **Reference**: the champion's training window (its training and validation cutoffs, from the
  registry), or, without a champion or a recorded window, or with ``[monitor] reference = "lag"``,
  the population ``reference_lag_days`` before the batch. At most ``reference_rows`` rows (a
  seeded sample).
* **Batch**: the population at ``as_of`` (default: the scoring cutoff, the midnight after the
  newest event), all of it.
* **Features**: the champion's inputs (its registered feature list), else every feature the
  store supports; **scores**: the champion's probabilities of both (computed here, so the
  reference and the batch are scored the same way), less those ``[monitor] ignore`` names.
  A customer in the reference at several cutoffs counts once in the null's redraws of the
  reference (its distinct customers are its independent rows).
* **The season** (``[monitor] season = "last_year"``, the default): when the store holds the
  same moments a year earlier (the reference's cutoffs and the batch's, one calendar year back)
  with at least ``season_history_days`` of events before the earliest of them, every check asks
  whether the batch moved beyond how the same weeks moved last year (:class:`.drift.Season`);
  otherwise the plain check, with a note that says why.
* Drift of every feature and of the scores (:mod:`.drift`), the label-free estimate of the
  batch (:mod:`.estimate`), the realized figures of matured cohorts (:mod:`.realized`) and the
  label alarm on the newest of them (:mod:`.performance`).
* ``alarm``: a drift alarm (``drifted``) or a label alarm. Outcomes are read only inside label
  windows that end by ``as_of``, so replaying a past ``as_of`` on a store with later data sees
  what was known then.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from churnguard.config import ChurnDefinition, MonitorConfig
from churnguard.cutoffs import LabelError, event_span, resolve_as_of, to_cutoff
from churnguard.errors import ChurnguardError
from churnguard.features import build_features
from churnguard.labels import population_and_labels
from churnguard.models.base import ChurnModel
from churnguard.monitor.drift import FeatureDrift, Season, drift_test
from churnguard.monitor.estimate import LIMIT, Estimate, estimate
from churnguard.monitor.performance import LabelCheck, label_check
from churnguard.monitor.realized import Cohort, matured_cohorts
from churnguard.registry import (
    CHAMPION,
    ModelVersion,
    alias_version,
    get_model_version,
    load_model,
    trained_definition,
)
from churnguard.sequences import SequenceCache
from churnguard.snapshots import Snapshot, order_histories
from churnguard.store import Store

__all__ = ["SCORE", "MonitorError", "MonitorReport", "Reference", "SeasonWindow", "run_monitor",
           "year_earlier"]

#: The name the scores' drift check carries among the features' (one more hypothesis of the
#: Benjamini–Hochberg family).
SCORE = "p_churn"


class MonitorError(ChurnguardError, ValueError):
    """Nothing to monitor: no events, or nobody in the reference or the batch population."""

    code = "cannot_monitor"


@dataclass(frozen=True, kw_only=True)
class Reference:
    """The reference window: ``source`` "champion" (its training window) or "lag" (the
    population ``reference_lag_days`` before the batch), its cutoffs and rows used."""

    source: str
    cutoffs: list[dt.datetime]
    rows: int
    population: int  # rows before sampling
    model_version: str | None
    season: SeasonWindow | None = None

    @property
    def description(self) -> str:
        days = ", ".join(f"{c:%Y-%m-%d}" for c in self.cutoffs)
        what = (f"the training window of {self.model_version}" if self.source == "champion"
                else "the population one reference lag before the batch")
        sampled = f" (a sample of {self.rows:,} of {self.population:,})" \
            if self.rows < self.population else ""
        text = f"{what}: {self.rows:,} rows at {days}{sampled}"
        return text if self.season is None else f"{text}; {self.season.description}"

    def to_dict(self) -> dict:
        return {"source": self.source, "cutoffs": [c.isoformat() for c in self.cutoffs],
                "rows": self.rows, "population": self.population,
                "model_version": self.model_version, "description": self.description,
                "season": None if self.season is None else self.season.to_dict()}


@dataclass(frozen=True, kw_only=True)
class SeasonWindow:
    """The same moments a year earlier that a seasonal check compares changes with: the
    reference's cutoffs and the batch's cutoff one year back, and their rows."""

    reference_cutoffs: list[dt.datetime]
    batch_cutoff: dt.datetime
    reference_rows: int
    batch_rows: int

    @property
    def description(self) -> str:
        days = ", ".join(f"{c:%Y-%m-%d}" for c in self.reference_cutoffs)
        return (f"changes compared with the same weeks a year earlier ({days} to "
                f"{self.batch_cutoff:%Y-%m-%d}: {self.reference_rows:,} and "
                f"{self.batch_rows:,} rows)")

    def to_dict(self) -> dict:
        return {"reference_cutoffs": [c.isoformat() for c in self.reference_cutoffs],
                "batch_cutoff": self.batch_cutoff.isoformat(),
                "reference_rows": self.reference_rows, "batch_rows": self.batch_rows,
                "description": self.description}


@dataclass(frozen=True, kw_only=True)
class MonitorReport:
    """What one monitoring pass found (aggregates only: no customer appears in it)."""

    as_of: dt.datetime
    reference: Reference
    batch_size: int
    model_version: str | None
    horizon_days: int
    statistic: str
    fdr: float
    bootstrap: int
    features: list[FeatureDrift]
    score_drift: FeatureDrift | None
    alarms: list[str]
    drifted: bool
    estimate: Estimate | None
    realized: list[Cohort]
    label: LabelCheck | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def alarm(self) -> bool:
        """A drift alarm or a label alarm: what makes a challenger due in the cycle."""
        return self.drifted or bool(self.label and self.label.alarm)

    def to_dict(self) -> dict:
        """The report as JSON-ready data (``churnguard monitor --json``, ``GET /v1/monitor``)."""
        return {
            "as_of": self.as_of.isoformat(), "reference": self.reference.to_dict(),
            "batch_size": self.batch_size, "model_version": self.model_version,
            "horizon_days": self.horizon_days, "statistic": self.statistic, "fdr": self.fdr,
            "bootstrap": self.bootstrap, "features": [f.to_dict() for f in self.features],
            "score_drift": None if self.score_drift is None else self.score_drift.to_dict(),
            "alarms": list(self.alarms), "drifted": self.drifted,
            "estimate": None if self.estimate is None else self.estimate.to_dict(),
            "estimate_limit": LIMIT,
            "realized": [c.to_dict() for c in self.realized],
            "label": None if self.label is None else self.label.to_dict(),
            "label_alarm": bool(self.label and self.label.alarm), "alarm": self.alarm,
            "notes": list(self.notes)}


@dataclass(frozen=True)
class _Champion:
    version: ModelVersion
    model: ChurnModel


def _champion(store: Store) -> _Champion | None:
    version = alias_version(store, CHAMPION)
    if version is None:
        return None
    return _Champion(get_model_version(store, version), load_model(store, version))


def _window(champion: _Champion | None) -> list[dt.datetime]:
    """The champion's training and validation cutoffs, as the registry recorded them."""
    if champion is None:
        return []
    window = champion.version.data_window if isinstance(champion.version.data_window, dict) \
        else {}
    days = [*window.get("train_cutoffs", []), window.get("validation_cutoff")]
    return sorted({to_cutoff(d) for d in days if d})


def _population(store: Store, definition: ChurnDefinition, cutoffs: Sequence[dt.datetime],
                *, most: int | None, seed: int) -> tuple[pd.DataFrame, int]:
    """The (user_id, cutoff) rows of the population at ``cutoffs``, at most ``most`` of them (a
    seeded sample), and how many there were."""
    rows = population_and_labels(store, definition=definition, cutoffs=cutoffs)
    rows = rows[["user_id", "cutoff"]]
    total = len(rows)
    if most is not None and total > most:
        rows = rows.sample(n=most, random_state=seed).sort_values(["cutoff", "user_id"])
    return rows.reset_index(drop=True), total


def _features(store: Store, rows: pd.DataFrame, definition: ChurnDefinition,
              names: list[str] | None) -> pd.DataFrame:
    frame = build_features(store, rows, definition=definition, features=names)
    frame.attrs = {}
    return frame


def _scores(store: Store, champion: _Champion, frame: pd.DataFrame, rows: pd.DataFrame,
            definition: ChurnDefinition) -> np.ndarray:
    """The champion's probabilities of the rows (a snapshot as scoring builds it)."""
    snapshot = Snapshot(features=frame, orders=order_histories(store, rows, definition=definition),
                        horizon_days=definition.horizon_days,
                        meta={"sequences": SequenceCache(store)})
    return np.asarray(champion.model.predict_proba(snapshot), dtype=float)


def _reference(store: Store, champion: _Champion | None, definition: ChurnDefinition,
               as_of: dt.datetime, config: MonitorConfig) -> tuple[Reference, pd.DataFrame]:
    cutoffs = [c for c in _window(champion) if c < as_of] if config.reference == "champion" else []
    source = "champion" if cutoffs else "lag"
    if not cutoffs:
        cutoffs = [as_of - dt.timedelta(days=config.reference_lag_days)]
    rows, total = _population(store, definition, cutoffs, most=config.reference_rows,
                              seed=config.seed)
    if rows.empty:
        days = ", ".join(f"{c:%Y-%m-%d}" for c in cutoffs)
        raise MonitorError(f"nobody is in the reference population at {days}; ingest more "
                           "history, or set a shorter [monitor] reference_lag_days")
    return Reference(source=source, cutoffs=cutoffs, rows=len(rows), population=total,
                     model_version=champion.version.version if champion else None), rows


def year_earlier(when: dt.datetime) -> dt.datetime:
    """The same calendar date and time a year earlier (29 February: the 28th).

    >>> year_earlier(dt.datetime(2026, 11, 12)), year_earlier(dt.datetime(2028, 2, 29))
    (datetime.datetime(2025, 11, 12, 0, 0), datetime.datetime(2027, 2, 28, 0, 0))
    """
    if when.month == 2 and when.day == 29:
        return when.replace(year=when.year - 1, day=28)
    return when.replace(year=when.year - 1)


def _season(store: Store, definition: ChurnDefinition, reference: Reference,
            when: dt.datetime, config: MonitorConfig
            ) -> tuple[pd.DataFrame, pd.DataFrame, str | None]:
    """Last year's reference and batch rows for a seasonal check, or empty frames and the
    reason there is none (module docstring)."""
    none = pd.DataFrame(columns=["user_id", "cutoff"])
    if config.season == "off":
        return none, none, None
    cutoffs = [year_earlier(c) for c in reference.cutoffs]
    batch_cutoff = year_earlier(when)
    first, _ = event_span(store)
    needed = min(cutoffs) - dt.timedelta(days=config.season_history_days)
    if first is None or first > needed:
        return none, none, (
            f"no seasonal check: the same weeks a year earlier ({min(cutoffs):%Y-%m-%d}) need "
            f"{config.season_history_days} days of events before them ([monitor] "
            "season_history_days), and the store's begin later")
    last_ref, _ = _population(store, definition, cutoffs, most=config.reference_rows,
                              seed=config.seed)
    last_batch, _ = _population(store, definition, [batch_cutoff], most=config.reference_rows,
                                seed=config.seed)
    if last_ref.empty or last_batch.empty:
        return none, none, ("no seasonal check: nobody is in the population at the same weeks "
                            "a year earlier")
    return last_ref, last_batch, None


def run_monitor(store: Store, *, as_of: dt.datetime | None = None,
                config: MonitorConfig | None = None,
                progress: Callable[[str], None] | None = None,
                definition: ChurnDefinition | None = None) -> MonitorReport:
    """Drift, the label-free estimate and the realized metrics at ``as_of`` (module docstring).

    ``definition``: the churn definition when the champion has none of its own (default: the
    default definition); the champion's own always wins, as in scoring. Raises
    :class:`MonitorError` when there is nothing to compare.
    """
    config = config or MonitorConfig()
    say = progress or (lambda message: None)
    configured = definition or ChurnDefinition()
    try:
        when = resolve_as_of(store, as_of)
    except LabelError as exc:  # no events: nothing to monitor (one code for the faces)
        raise MonitorError(str(exc)) from exc
    champion = _champion(store)
    used = (trained_definition(champion.version) if champion else None) or configured
    names = list(champion.version.features) if champion else None
    say("reading the reference window")
    reference, ref_rows = _reference(store, champion, used, when, config)
    batch_rows, _ = _population(store, used, [when], most=None, seed=config.seed)
    if batch_rows.empty:
        raise MonitorError(f"nobody is in the population at {when:%Y-%m-%d}: nothing to monitor")
    last_ref_rows, last_batch_rows, no_season = _season(store, used, reference, when, config)
    seasonal = not last_ref_rows.empty
    say(f"building features: reference {len(ref_rows):,} rows, batch {len(batch_rows):,}"
        + (f", a year earlier {len(last_ref_rows):,} and {len(last_batch_rows):,}"
           if seasonal else ""))
    frames = [_features(store, rows, used, names)
              for rows in ([ref_rows, batch_rows, last_ref_rows, last_batch_rows] if seasonal
                           else [ref_rows, batch_rows])]
    checked = [c for c in frames[0].columns if all(c in f.columns for f in frames[1:])]
    tables = [f[checked].reset_index(drop=True) for f in frames]
    p_batch = None
    if champion is not None:
        say(f"scoring {'all' if seasonal else 'both'} with {champion.version.version}")
        for table, frame, rows in zip(tables, frames,
                                      [ref_rows, batch_rows, last_ref_rows, last_batch_rows]):
            table[SCORE] = _scores(store, champion, frame, rows, used)
        p_batch = tables[1][SCORE].to_numpy()
    ref_table, batch_table = tables[:2]
    season = None
    if seasonal:
        season = Season(reference=tables[2], batch=tables[3],
                        reference_size=int(last_ref_rows["user_id"].nunique()))
        reference = replace(reference, season=SeasonWindow(
            reference_cutoffs=sorted(set(last_ref_rows["cutoff"])),
            batch_cutoff=year_earlier(when), reference_rows=len(last_ref_rows),
            batch_rows=len(last_batch_rows)))
    say(f"drift of {len(checked)} features{' and the scores' if champion else ''} "
        f"({config.bootstrap} bootstrap draws{', against last year' if seasonal else ''})")
    ignored = set(config.ignore)
    # The same customer at several cutoffs of the window is not several independent rows: the
    # null redraws the reference at its number of distinct customers (module docstring).
    tests = drift_test(ref_table, batch_table, statistic=config.statistic, fdr=config.fdr,
                       bootstrap=config.bootstrap, seed=config.seed,
                       features=[c for c in ref_table.columns if c not in ignored],
                       reference_size=int(ref_rows["user_id"].nunique()), season=season)
    features = [t for t in tests if t.name != SCORE]
    score = next((t for t in tests if t.name == SCORE), None)
    say("realized metrics of matured cohorts")
    realized = matured_cohorts(store, definition=configured,
                               treatment_window_days=config.treatment_window_days, now=when)
    say("label alarm on the newest matured cohort")
    label = label_check(store, now=when, definition=configured, config=config,
                        champion=champion.version.version if champion else None)
    notes = [] if champion else ["no champion: no score drift and no estimate; the reference "
                                 "is the population one reference lag before the batch"]
    if no_season:
        notes.append(no_season)
    return MonitorReport(
        as_of=when, reference=reference, batch_size=len(batch_table),
        model_version=champion.version.version if champion else None,
        horizon_days=used.horizon_days, statistic=config.statistic, fdr=config.fdr,
        bootstrap=config.bootstrap, features=features, score_drift=score,
        alarms=[t.name for t in tests if t.alarm], drifted=any(t.alarm for t in tests),
        estimate=None if p_batch is None else estimate(p_batch, seed=config.seed),
        realized=realized, label=label, notes=notes)
