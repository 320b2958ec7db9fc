"""Model versions in the store: register, look up, and move aliases (``champion``) with history.

A version is immutable once registered: its artifact (the pickled model), the configuration it
was trained with, its data window (cutoffs, rows) and its metrics. An alias points at one version;
moving it is one transaction that also appends to ``model_alias_history``, so a rollback can
always find where the alias was before.

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
import pickle
import uuid
from dataclasses import dataclass
from typing import Any

from churnguard.config import ChurnDefinition
from churnguard.errors import ChurnguardError
from churnguard.models.base import MODEL_FORMAT_VERSION, ChurnModel
from churnguard.store import Store

CHAMPION = "champion"


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


def set_alias(store: Store, alias: str, version: str, *, reason: str) -> None:
    """Point ``alias`` at ``version`` atomically, recording the move in the history."""
    get_model_version(store, version)  # fails clearly for an unknown version
    with store.transaction() as con:
        previous = con.execute("SELECT version FROM model_aliases WHERE alias = ?", [alias]).fetchall()
        now = _now()
        con.execute("INSERT OR REPLACE INTO model_aliases VALUES (?, ?, ?)", [alias, version, now])
        con.execute(
            "INSERT INTO model_alias_history VALUES (?, ?, ?, ?, ?)",
            [alias, version, previous[0][0] if previous else None, now, reason],
        )


def alias_history(store: Store, alias: str = CHAMPION) -> list[dict[str, Any]]:
    rows = store.con.execute(
        "SELECT version, previous_version, changed_at, reason FROM model_alias_history "
        "WHERE alias = ? ORDER BY changed_at",
        [alias],
    ).fetchall()
    return [dict(zip(("version", "previous_version", "changed_at", "reason"), r)) for r in rows]
