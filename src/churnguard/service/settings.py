"""Service settings: what the REST service does, read from the environment, checked at start.

Settings fail fast (STYLE.md #9): outside development a missing, empty, default or short API key
refuses to start with a message that says how to set one.

>>> s = ServiceSettings.from_env({"CHURNGUARD_ENV": "development"})
>>> s.role_of(DEVELOPMENT_KEY)
'admin'
>>> ServiceSettings.from_env({"CHURNGUARD_API_KEYS": "k" * 20 + ":read"}).role_of("k" * 20)
'read'
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from churnguard.errors import ChurnguardError

ROLES = ("read", "write", "admin")
Role = Literal["read", "write", "admin"]
DEVELOPMENT_KEY = "churnguard-dev-key"  # the default key; accepted in development only
MIN_KEY_LENGTH = 16
ENV_PREFIX = "CHURNGUARD_"


class SettingsError(ChurnguardError, ValueError):
    """The service settings are invalid or unsafe; the message says how to fix them."""

    code = "invalid_settings"


class ServiceSettings(BaseModel):
    """How the REST service runs. Every field has an environment variable CHURNGUARD_<NAME>.

    ``api_keys`` maps each key to its role (read < write < admin); from the environment as
    ``CHURNGUARD_API_KEYS="key1:admin,key2:read"``. ``clock`` says what "now" is: ``wall`` (the
    current time) or ``data`` (just after the newest stored event: for stores of past data, such
    as the simulated demo shop).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: Literal["development", "production"] = "production"
    api_keys: dict[str, Role] = Field(default_factory=dict)
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = Field(5 * 2**20, gt=0)
    max_batch_events: int = Field(10_000, gt=0)
    max_score_ids: int = Field(10_000, gt=0)
    rate_per_second: float = Field(50.0, gt=0)
    rate_burst: int = Field(100, gt=0)
    # Failed sign-ins (a missing or unknown key) per client address: at most this many in a
    # burst, refilled at this many a minute; past it every request of that client answers 429.
    auth_failures_burst: int = Field(10, gt=0)
    auth_failures_per_minute: float = Field(10.0, gt=0)
    clock: Literal["wall", "data"] = "wall"
    # Everyone's risk is recomputed this often (the answers between refreshes move only with the
    # clock; a customer's new events are taken into account at once). 0: never after the start.
    # A refresh explains everyone again (TreeSHAP: about 10 ms of CPU a customer).
    refresh_seconds: float = Field(6 * 3600.0, ge=0)
    warm_on_start: bool = True
    timeline_events: int = Field(200, gt=0, le=10_000)

    @model_validator(mode="after")
    def _safe(self) -> ServiceSettings:
        if self.env == "development":
            return self
        if not self.api_keys:
            raise ValueError(
                "no API keys configured; set CHURNGUARD_API_KEYS='KEY:admin,KEY2:read' with keys "
                f"of at least {MIN_KEY_LENGTH} characters (e.g. from `python -c \"import secrets;"
                " print(secrets.token_urlsafe(32))\"`), or CHURNGUARD_ENV=development for a local "
                "trial")
        for key in self.api_keys:
            if not key.strip() or key == DEVELOPMENT_KEY:
                raise ValueError("an API key is empty or the development default; outside "
                                 "development every key must be a secret of your own")
            if len(key) < MIN_KEY_LENGTH:
                raise ValueError(f"an API key is shorter than {MIN_KEY_LENGTH} characters; use "
                                 "a long random secret")
        if "*" in self.cors_origins:
            raise ValueError("CORS origin '*' is not allowed outside development; list the "
                             "dashboard's origins instead")
        return self

    @property
    def keys(self) -> dict[str, Role]:
        """The keys in force: in development without configured keys, the development key."""
        if not self.api_keys and self.env == "development":
            return {DEVELOPMENT_KEY: "admin"}
        return dict(self.api_keys)

    def role_of(self, key: str) -> Role | None:
        """The role of ``key`` (compared in constant time), or None for an unknown key."""
        found: Role | None = None
        for known, role in self.keys.items():
            if secrets.compare_digest(known.encode("utf-8"), key.encode("utf-8")):
                found = role
        return found

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object
                 ) -> ServiceSettings:
        """Settings from CHURNGUARD_* variables (``environ`` defaults to ``os.environ``)."""
        environ = os.environ if environ is None else environ
        raw: dict[str, object] = {}
        for name in cls.model_fields:
            value = environ.get(ENV_PREFIX + name.upper())
            if value is None:
                continue
            if name == "api_keys":
                try:
                    raw[name] = parse_api_keys(value)
                except SettingsError as exc:
                    raise SettingsError(f"cannot start the service: {exc}") from None
            elif name == "cors_origins":
                raw[name] = tuple(o.strip() for o in value.split(",") if o.strip())
            elif name == "warm_on_start":
                raw[name] = value.strip().lower() in ("1", "true", "yes")
            else:
                raw[name] = value
        raw.update(overrides)
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                (f"CHURNGUARD_{str(err['loc'][0]).upper()}: " if err["loc"] else "")
                + err["msg"].removeprefix("Value error, ")
                for err in exc.errors())
            raise SettingsError(f"cannot start the service: {problems}") from None


def parse_api_keys(text: str) -> dict[str, str]:
    """``"key1:admin,key2:read"`` -> ``{"key1": "admin", "key2": "read"}``.

    >>> parse_api_keys("abc:read, def:admin")
    {'abc': 'read', 'def': 'admin'}
    """
    keys: dict[str, str] = {}
    for index, part in enumerate(p.strip() for p in text.split(",")):
        if not part:
            continue
        key, sep, role = part.rpartition(":")
        if not sep or not key or role not in ROLES:
            # The key itself is a secret: never quote it.
            raise SettingsError(f"CHURNGUARD_API_KEYS entry {index + 1}: expected KEY:ROLE with "
                                f"ROLE one of {', '.join(ROLES)}")
        keys[key] = role
    return keys
