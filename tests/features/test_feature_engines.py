"""One feature query, two engines: the engine-specific spellings live in the registry's forms.

These run without Spark; tests/spark/ runs both queries and requires equal features.
"""

from __future__ import annotations

import re
import string

import pytest

from churnguard.features.registry import ENGINES, FORMS
from churnguard.features.sql import feature_query

ATTRS = [("attr_plan", "plan", False), ("attr_age", "age", True)]
# DuckDB functions Spark lacks or reads differently; each has a form in registry.toml
DUCKDB_ONLY = ("epoch_us(", "date_diff(", "date_trunc(", "arg_max(", "strftime(", '"attr_')


def _query(engine: str) -> str:
    return feature_query(pop_view="population", activity=("order",), lookback_days=365,
                         attribute_columns=ATTRS, engine=engine)


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_form_is_spelled_for_every_engine_with_the_same_arguments() -> None:
    assert FORMS
    for form in FORMS.values():
        assert set(form.spellings) == set(ENGINES), form.name
        assert all(form.spellings.values()), form.name
        assert len({frozenset(_placeholders(s)) for s in form.spellings.values()}) == 1, form.name
        assert form.meaning and form.features, form.name


def test_the_spark_query_uses_no_duckdb_only_spelling() -> None:
    spark = _query("spark")
    assert [f for f in DUCKDB_ONLY if f in spark] == []
    # every DECIMAL-looking literal a value is divided by is a DOUBLE on Spark
    assert re.findall(r"/ \(?\d+\.\d+(?!D)\b", spark) == []
    assert "unix_micros(e.ts)" in spark and "max_by(rating, struct(ts, event_id))" in spark


def test_the_duckdb_query_is_the_default_and_reads_the_store_tables() -> None:
    duck = _query("duckdb")
    assert duck == feature_query(pop_view="population", activity=("order",), lookback_days=365,
                                 attribute_columns=ATTRS)
    assert "epoch_us(e.ts)" in duck and "FROM events e" in duck
    renamed = feature_query(pop_view="population", activity=("order",), lookback_days=365,
                            attribute_columns=ATTRS, tables={"events": "lake_events"})
    assert "FROM lake_events e" in renamed and "FROM events " not in renamed


def test_an_unknown_engine_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown SQL engine 'postgres'"):
        _query("postgres")
