"""Configuration objects (pydantic): what to do, kept apart from the code that does it.

A project's ``churnguard.toml`` is one :class:`ProjectConfig`; every section has defaults, so an
empty file is a valid project.

>>> ProjectConfig().churn.horizon_days
90
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class _Section(BaseModel):
    # A typo in churnguard.toml must fail loudly, not be ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChurnDefinition(_Section):
    """At cutoff T the population is every user with an activity event in [T - lookback, T); a
    user is churned when no activity event falls in [T, T + horizon)."""

    activity: tuple[str, ...] = ("order",)
    lookback_days: int = Field(365, gt=0)
    horizon_days: int = Field(90, gt=0)

    @field_validator("activity")
    @classmethod
    def _activity_not_empty(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or any(not v.strip() for v in value):
            raise ValueError("activity must name at least one event type, e.g. ['order']")
        return value


class IngestConfig(_Section):
    """How raw files are normalised before they are stored."""

    # Replace user ids by a keyed hash (HMAC-SHA256) on every table, so the store never holds
    # the shop's own customer ids. The key comes from the environment, never from this file.
    pseudonymise: bool = False
    pseudonym_key_env: str = "CHURNGUARD_PSEUDONYM_KEY"
    # Remove e-mail addresses and phone numbers from free text (reviews, tickets) before storing.
    scrub_text: bool = True
    # The zone that timestamps without an offset are in. Unset: they are read as UTC, but a file
    # that mixes timestamps with and without an offset is rejected as ambiguous.
    timezone: str | None = None

    @property
    def naive_timezone(self) -> str:
        """The zone naive timestamps are read in."""
        return self.timezone or "UTC"


class ScoringConfig(_Section):
    """Risk tiers from the calibrated churn probability: high >= high, medium >= medium."""

    high: float = Field(0.7, gt=0, le=1)
    medium: float = Field(0.4, gt=0, le=1)
    lang: str = "en"

    @model_validator(mode="after")
    def _ordered(self) -> ScoringConfig:
        if self.medium > self.high:
            raise ValueError(f"medium ({self.medium}) must not exceed high ({self.high})")
        if self.lang not in ("en", "zh"):
            raise ValueError(f"lang must be 'en' or 'zh', not {self.lang!r}")
        return self


class SimulationConfig(_Section):
    """Set by `churnguard demo`: where the simulator's ground truth lies, for the oracle."""

    truth: str | None = None


class ProjectConfig(_Section):
    churn: ChurnDefinition = ChurnDefinition()
    ingest: IngestConfig = IngestConfig()
    scoring: ScoringConfig = ScoringConfig()
    simulation: SimulationConfig = SimulationConfig()


class ConfigError(ValueError):
    """churnguard.toml is missing, unreadable or invalid."""


def load_config(path: Path) -> ProjectConfig:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: not found; run `churnguard init` to create a project") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return ProjectConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from exc


def dump_config(config: ProjectConfig) -> str:
    return tomli_w.dumps(config.model_dump(mode="json", exclude_none=True))


# What `churnguard init` writes: the defaults, spelled out and explained.
NEW_PROJECT_TOML = """\
# churnguard project settings; docs/commands.md explains each one.

[churn]
activity = ["order"]   # event types that count as activity
lookback_days = 365    # population at cutoff T: activity in [T - lookback, T)
horizon_days = 90      # churned: no activity in [T, T + horizon)

[ingest]
pseudonymise = false   # replace user ids by HMAC-SHA256(key, id); the key is read from the
pseudonym_key_env = "CHURNGUARD_PSEUDONYM_KEY"   # environment variable named here
scrub_text = true      # remove e-mail addresses and phone numbers from free text
# timezone = "Europe/Berlin"   # zone of timestamps written without an offset (unset: UTC, and a
                               # file mixing timestamps with and without offsets is rejected)

[scoring]
high = 0.7             # risk tier 'high' from this churn probability up
medium = 0.4           # 'medium' from this one up; below it 'low'
lang = "en"            # language of the reasons: en or zh
"""
