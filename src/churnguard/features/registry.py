"""The feature registry: every engineered feature's name, group, one-line description and unit.

Reason codes, the documentation and the "skipped groups" report all read this one table (the
data is in registry.toml beside this module), so a feature added to the SQL without an entry
there fails the registry test.

>>> FEATURES["overdue_ratio"].group
'gaps'
>>> feature_spec("attr_plan").group
'attributes'

Where DuckDB and Spark SQL spell a meaning differently, the form is declared in registry.toml too:

>>> FORMS["epoch_us"].render("spark", x="e.ts")
'unix_micros(e.ts)'
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources

# Units say how a value reads in a sentence ("12 days", "3 orders", "0.4 of ...").
UNITS = ("days", "count", "amount", "ratio", "share", "rating", "index", "value")

WINDOWS = (30, 90, 180)  # order/spend windows, each compared with the window before it
BROWSE_WINDOWS = (30, 90)
CART_WINDOW = 90


@dataclass(frozen=True, kw_only=True)
class FeatureSpec:
    """One feature column. ``requires``: event types that must exist in the store for the column
    to mean anything ("@session_id": some events carry a session id)."""

    name: str
    group: str
    description: str
    unit: str
    requires: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class GroupSpec:
    name: str
    description: str


_TABLE = tomllib.loads((resources.files(__package__) / "registry.toml").read_text(encoding="utf-8"))
_PER = {"windows": WINDOWS, "browse_windows": BROWSE_WINDOWS}

GROUPS: dict[str, GroupSpec] = {
    name: GroupSpec(name=name, description=description)
    for name, description in _TABLE["groups"].items()
}


def _specs() -> list[FeatureSpec]:
    """The features of registry.toml in column order, a windowed section window by window."""
    specs = []
    for section in _TABLE["section"]:
        for w in _PER[section["per"]] if "per" in section else (None,):
            values = {"w": w, "cart": CART_WINDOW}
            specs += [
                FeatureSpec(name=f["name"].format(**values), group=section["group"],
                            unit=f["unit"], requires=tuple(f.get("requires", ())),
                            description=f["description"].format(**values))
                for f in section["feature"]
            ]
    return specs


FEATURES: dict[str, FeatureSpec] = {spec.name: spec for spec in _specs()}

ATTRIBUTE_PREFIX = "attr_"

ENGINES = ("duckdb", "spark")  # the SQL engines the feature query is generated for


@dataclass(frozen=True, kw_only=True)
class EngineForm:
    """One meaning the feature query needs, spelled for each engine (registry.toml ``[forms]``)."""

    name: str
    meaning: str
    features: tuple[str, ...]
    spellings: dict[str, str]

    def render(self, engine: str, **args: str) -> str:
        """This form's SQL for ``engine`` with its arguments filled in."""
        if engine not in self.spellings:
            raise ValueError(f"unknown SQL engine {engine!r}; known: {list(ENGINES)}")
        return self.spellings[engine].format(**args)


FORMS: dict[str, EngineForm] = {
    name: EngineForm(name=name, meaning=" ".join(form["meaning"].split()),
                     features=tuple(form["features"]),
                     spellings={engine: form[engine] for engine in ENGINES})
    for name, form in _TABLE["forms"].items()
}


def feature_spec(name: str) -> FeatureSpec:
    """The spec of a registered feature, or a generic one for a user-attribute column."""
    if name in FEATURES:
        return FEATURES[name]
    if name.startswith(ATTRIBUTE_PREFIX):
        attribute = name[len(ATTRIBUTE_PREFIX):]
        return FeatureSpec(name=name, group="attributes", unit="value",
                           description=f"user attribute '{attribute}' from the users file")
    raise KeyError(f"{name!r} is not a churnguard feature; see churnguard.features.FEATURES")
