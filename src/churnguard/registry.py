"""Model versions in the store: register, look up, and move aliases (``champion``) with history.

A version is immutable once registered: its artifact (the pickled model), the configuration it
was trained with, its data window (cutoffs, rows) and its metrics. An alias points at one version;
moving it is one transaction that also appends to ``model_alias_history``, so a rollback can
always find where the alias was before.

The champion/challenger gate (:mod:`churnguard.champions`) writes each of its decisions here, with
its evidence (:class:`GateDecision`, table ``model_decisions``): :func:`record_decision` writes
the row and, when the decision moves the champion, the move, in ONE transaction, so a crash at
any point leaves either both or neither (:data:`DECISION_FAULT_POINTS`). :func:`rollback` sets
the champion back and records why.

>>> from churnguard.store import Store
>>> from churnguard.models.baselines import RecencyModel
>>> store = Store.in_memory()
>>> v = register_model(store, RecencyModel(), name="recency", config={}, data_window={},
...                    metrics={}, features=["days_since_last_order"])
>>> set_alias(store, "champion", v, reason="first model")
>>> alias_version(store, "champion") == v
True
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import os
import pickle
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import duckdb

from churnguard.config import ChurnDefinition
from churnguard.errors import ChurnguardError
from churnguard.ingest.faults import FAULT_ENV, FAULT_EXIT_CODE
from churnguard.models.base import MODEL_FORMAT_VERSION, ChurnModel
from churnguard.store import Store

CHAMPION = "champion"
#: The alias of the newest challenger the gate trained (shadow-scored, not used for scores).
CHALLENGER = "challenger"


class RegistryError(ChurnguardError, LookupError):
    """A model version or alias that does not exist."""

    code = "model_not_found"


@dataclass(frozen=True, kw_only=True)
class ModelVersion:
    version: str
    name: str
    created_at: dt.datetime
    config: dict[str, Any]
    data_window: dict[str, Any]
    metrics: dict[str, Any]
    features: list[str]


def trained_definition(version: ModelVersion) -> ChurnDefinition | None:
    """The churn definition the version was trained with (``config["definition"]``, written
    by :func:`churnguard.training.train_model`), or None for a version registered without one.

    >>> trained_definition(ModelVersion(version="v", name="gbdt", created_at=_now(), features=[],
    ...     config={"definition": {"horizon_days": 30}}, data_window={}, metrics={})).horizon_days
    30
    """
    given = version.config.get("definition")
    return ChurnDefinition.model_validate(given) if isinstance(given, dict) else None


def champion_definition(store: Store, configured: ChurnDefinition) -> ChurnDefinition:
    """The definition scores should follow: the champion's own (a model trained for a 30-day
    horizon predicts a 30-day horizon), else ``configured`` (churnguard.toml's)."""
    version = alias_version(store, CHAMPION)
    if version is None:
        return configured
    return trained_definition(get_model_version(store, version)) or configured


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _jsonable(value: object) -> object:
    # A model inside a config (an ensemble's configured member) is stored as its name and
    # hyper-parameters, not as its repr.
    if isinstance(value, ChurnModel):
        return {"name": value.name, "params": value.get_params()}
    return str(value)


def _dumps(value: object) -> str:
    return json.dumps(value, default=_jsonable, sort_keys=True)


def register_model(store: Store, model: ChurnModel, *, name: str, config: dict[str, Any],
                   data_window: dict[str, Any], metrics: dict[str, Any],
                   features: list[str]) -> str:
    """Store a fitted model as a new immutable version; returns the version id."""
    created = _now()
    version = f"{name}-{created:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    buffer = io.BytesIO()
    pickle.dump({"format": MODEL_FORMAT_VERSION, "model": model}, buffer,
                protocol=pickle.HIGHEST_PROTOCOL)
    store.con.execute(
        "INSERT INTO models VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [version, name, created, _dumps(config), _dumps(data_window), _dumps(metrics),
         _dumps(list(features)), buffer.getvalue()],
    )
    return version


def _row_to_version(row: tuple) -> ModelVersion:
    version, name, created_at, config, window, metrics, features = row
    return ModelVersion(version=version, name=name, created_at=created_at,
                        config=json.loads(config), data_window=json.loads(window),
                        metrics=json.loads(metrics), features=json.loads(features))


_COLUMNS = "version, name, created_at, config, data_window, metrics, features"


def list_models(store: Store) -> list[ModelVersion]:
    rows = store.con.execute(f"SELECT {_COLUMNS} FROM models ORDER BY created_at").fetchall()
    return [_row_to_version(r) for r in rows]


def get_model_version(store: Store, version: str) -> ModelVersion:
    rows = store.con.execute(f"SELECT {_COLUMNS} FROM models WHERE version = ?", [version]).fetchall()
    if not rows:
        raise RegistryError(f"no model version {version!r}; `churnguard models` lists them")
    return _row_to_version(rows[0])


def load_model(store: Store, version: str) -> ChurnModel:
    rows = store.con.execute("SELECT artifact FROM models WHERE version = ?", [version]).fetchall()
    if not rows:
        raise RegistryError(f"no model version {version!r}; `churnguard models` lists them")
    payload = pickle.loads(rows[0][0])
    if payload.get("format") != MODEL_FORMAT_VERSION:
        raise RegistryError(f"model {version} has format {payload.get('format')!r}; retrain it")
    return payload["model"]


def alias_version(store: Store, alias: str = CHAMPION) -> str | None:
    rows = store.con.execute("SELECT version FROM model_aliases WHERE alias = ?", [alias]).fetchall()
    return rows[0][0] if rows else None


def _move_alias(con: duckdb.DuckDBPyConnection, alias: str, version: str, reason: str) -> None:
    """Point ``alias`` at ``version`` and append the move to the history, inside the caller's
    transaction."""
    previous = con.execute("SELECT version FROM model_aliases WHERE alias = ?", [alias]).fetchall()
    now = _now()
    con.execute("INSERT OR REPLACE INTO model_aliases VALUES (?, ?, ?)", [alias, version, now])
    con.execute(
        "INSERT INTO model_alias_history VALUES (?, ?, ?, ?, ?)",
        [alias, version, previous[0][0] if previous else None, now, reason],
    )


def set_alias(store: Store, alias: str, version: str, *, reason: str) -> None:
    """Point ``alias`` at ``version`` atomically, recording the move in the history."""
    get_model_version(store, version)  # fails clearly for an unknown version
    with store.transaction() as con:
        _move_alias(con, alias, version, reason)


def alias_history(store: Store, alias: str = CHAMPION) -> list[dict[str, Any]]:
    rows = store.con.execute(
        "SELECT version, previous_version, changed_at, reason FROM model_alias_history "
        "WHERE alias = ? ORDER BY changed_at",
        [alias],
    ).fetchall()
    return [dict(zip(("version", "previous_version", "changed_at", "reason"), r)) for r in rows]


# -- decisions of the champion/challenger gate ----------------------------------------------------
#: What a decision did to the champion alias: moved it to the challenger (promoted), left it
#: (kept; no-evidence: nothing out of time to judge on), or moved it back (rolled-back).
OUTCOMES = ("promoted", "kept", "no-evidence", "rolled-back")
#: What took the decision: a challenge, a check of realized metrics, a person (rollback).
TRIGGERS = ("challenge", "realized", "manual")

# Fault injection for the crash tests: with CHURNGUARD_FAULT set to one of these the process
# dies there (os._exit), inside record_decision's transaction: after the decision row is written
# and after the alias has moved, both before the commit.
FAULT_DECISION_ROW = "gate:after-decision-row"
FAULT_ALIAS_MOVED = "gate:after-alias"
DECISION_FAULT_POINTS = (FAULT_DECISION_ROW, FAULT_ALIAS_MOVED)


def _fault(point: str) -> None:
    if os.environ.get(FAULT_ENV) == point:
        os._exit(FAULT_EXIT_CODE)


def fault(point: str) -> None:
    """Die at ``point`` when ``CHURNGUARD_FAULT`` names it: the gate's own fault points outside
    :func:`record_decision` (:data:`churnguard.champions.FAULT_REFIT_REGISTERED`) go through
    here, so a test that replaces ``_fault`` reaches them too."""
    _fault(point)


@dataclass(frozen=True, kw_only=True)
class GateDecision:
    """One decision about the champion, with its evidence (a row of ``model_decisions``).

    ``champion_version`` held the alias when the decision was taken, ``challenger_version``
    would take it, ``champion_after`` holds it afterwards. The figures are measured on the
    out-of-time cohort at ``cohort_cutoff``: ROC-AUC of each, ΔAUC = challenger − champion
    with its one-sided bounds at ``confidence`` (paired bootstrap over customers, ``resamples``
    resamples from ``seed``), the ECE of each; ``tolerance`` and ``max_ece`` are the thresholds
    the decision used. ``evidence``: what else was measured (baselines, data windows).

    >>> d = GateDecision(decision_id="d1", decided_at=dt.datetime(2026, 1, 5), trigger="manual",
    ...                  outcome="rolled-back", champion_version="b", challenger_version="a",
    ...                  champion_after="a", reason="complaints")
    >>> d.moves_champion, d.to_dict()["decided_at"]
    (True, '2026-01-05T00:00:00')
    """

    decision_id: str
    decided_at: dt.datetime
    trigger: str
    outcome: str
    champion_version: str | None
    challenger_version: str | None
    champion_after: str | None
    reason: str
    cohort_cutoff: dt.datetime | None = None
    n_customers: int | None = None
    n_churned: int | None = None
    champion_auc: float | None = None
    challenger_auc: float | None = None
    delta_auc: float | None = None
    delta_auc_lower: float | None = None
    delta_auc_upper: float | None = None
    champion_ece: float | None = None
    challenger_ece: float | None = None
    tolerance: float | None = None
    max_ece: float | None = None
    confidence: float | None = None
    resamples: int | None = None
    seed: int | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome {self.outcome!r}; one of {', '.join(OUTCOMES)}")
        if self.trigger not in TRIGGERS:
            raise ValueError(f"trigger {self.trigger!r}; one of {', '.join(TRIGGERS)}")
        moved = self.outcome in ("promoted", "rolled-back")
        expected = self.challenger_version if moved else self.champion_version
        if self.champion_after != expected:
            raise ValueError(f"a {self.outcome} decision leaves the champion at "
                             f"{expected!r}, not {self.champion_after!r}")

    @property
    def moves_champion(self) -> bool:
        return self.champion_after != self.champion_version

    @property
    def promoted(self) -> bool:
        return self.outcome == "promoted"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: times in ISO format, non-finite figures as None."""
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if isinstance(value, dt.datetime):
                value = value.isoformat()
            elif isinstance(value, float) and not math.isfinite(value):
                value = None
            out[key] = value
        return out


def new_decision_id() -> str:
    return f"decision-{_now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


_DECISION_COLUMNS = (
    "decision_id", "decided_at", "trigger", "outcome", "champion_version", "challenger_version",
    "champion_after", "cohort_cutoff", "n_customers", "n_churned", "champion_auc",
    "challenger_auc", "delta_auc", "delta_auc_lower", "delta_auc_upper", "champion_ece",
    "challenger_ece", "tolerance", "max_ece", "confidence", "resamples", "seed", "reason",
    "evidence")


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def record_decision(store: Store, decision: GateDecision) -> GateDecision:
    """Write ``decision`` and, when it moves the champion, the move: one transaction, so a
    crash leaves both or neither. Refused (:class:`RegistryError`) when the champion is no
    longer ``decision.champion_version`` (another process moved it meanwhile)."""
    if decision.moves_champion:
        get_model_version(store, str(decision.champion_after))  # fails clearly when unknown
    row = {**asdict(decision), "evidence": _dumps(decision.evidence)}
    values = [_finite(row[c]) for c in _DECISION_COLUMNS]
    with store.transaction() as con:
        current = con.execute("SELECT version FROM model_aliases WHERE alias = ?",
                              [CHAMPION]).fetchall()
        if (current[0][0] if current else None) != decision.champion_version:
            raise RegistryError(
                f"the champion is now {current[0][0] if current else 'none'}, not "
                f"{decision.champion_version}: it changed while the decision was taken; run "
                "it again", code="champion_changed", bad_input=False)
        con.execute(f"INSERT INTO model_decisions ({', '.join(_DECISION_COLUMNS)}) VALUES "
                    f"({', '.join('?' for _ in _DECISION_COLUMNS)})", values)
        _fault(FAULT_DECISION_ROW)
        if decision.moves_champion:
            _move_alias(con, CHAMPION, str(decision.champion_after),
                        f"{decision.outcome} ({decision.decision_id}): {decision.reason}")
            _fault(FAULT_ALIAS_MOVED)
    return decision


def _row_to_decision(row: tuple) -> GateDecision:
    values = dict(zip(_DECISION_COLUMNS, row))
    values["evidence"] = json.loads(values["evidence"])
    return GateDecision(**values)


def list_decisions(store: Store, *, trigger: str | None = None) -> list[GateDecision]:
    """Every decision, oldest first (only those of ``trigger`` when given)."""
    where, args = ("WHERE trigger = ?", [trigger]) if trigger else ("", [])
    rows = store.con.execute(
        f"SELECT {', '.join(_DECISION_COLUMNS)} FROM model_decisions {where} "
        "ORDER BY decided_at, decision_id", args).fetchall()
    return [_row_to_decision(r) for r in rows]


def rollback_target(store: Store, *, to: str | None = None) -> str:
    """The version a rollback restores: ``to`` when given (it must have been champion before),
    else the newest earlier champion that was not itself rolled back away from."""
    current = alias_version(store, CHAMPION)
    if current is None:
        raise RegistryError("there is no champion to roll back; `churnguard train` makes one",
                            code="no_champion")
    earlier = [h["version"] for h in reversed(alias_history(store, CHAMPION))]
    if to is not None:
        get_model_version(store, to)
        if to == current:
            raise RegistryError(f"{to} is the champion already", code="rollback_refused")
        if to not in earlier:
            raise RegistryError(f"{to} has never been the champion, so there is nothing to roll "
                                "back to; `churnguard models` lists the versions and "
                                "`churnguard train --promote` makes a new one champion",
                                code="rollback_refused")
        return to
    demoted = {d.champion_version for d in list_decisions(store) if d.outcome == "rolled-back"}
    for version in earlier:
        if version != current and version not in demoted:
            return version
    raise RegistryError(f"{current} is the only champion there has been (or the earlier ones "
                        "were rolled back away from): there is nothing to roll back to",
                        code="rollback_refused")


def rollback(store: Store, *, reason: str, to: str | None = None,
             trigger: str = "manual", evidence: dict[str, Any] | None = None) -> GateDecision:
    """Set the champion back to the previous champion (or ``to``) and record why."""
    if not reason.strip():
        raise RegistryError("say why the champion is rolled back (--reason)",
                            code="rollback_refused")
    target = rollback_target(store, to=to)
    decision = GateDecision(
        decision_id=new_decision_id(), decided_at=_now(), trigger=trigger,
        outcome="rolled-back", champion_version=alias_version(store, CHAMPION),
        challenger_version=target, champion_after=target, reason=reason.strip(),
        evidence=evidence or {})
    return record_decision(store, decision)
