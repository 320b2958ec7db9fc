"""Settings fail fast: outside development, no usable key means no service."""

from __future__ import annotations

import pytest

from churnguard.service.settings import (
    DEVELOPMENT_KEY,
    ServiceSettings,
    SettingsError,
    parse_api_keys,
)

GOOD = "k" * 24


def test_production_without_keys_refuses_to_start() -> None:
    with pytest.raises(SettingsError, match="no API keys configured; set CHURNGUARD_API_KEYS"):
        ServiceSettings.from_env({})


@pytest.mark.parametrize(("keys", "says"), [
    (f"{DEVELOPMENT_KEY}:admin", "the development default"),
    ("tiny-key-q9:admin", "shorter than 16 characters"),
    ("   :read", "expected KEY:ROLE"),
])
def test_production_refuses_default_short_or_empty_keys(keys: str, says: str) -> None:
    with pytest.raises(SettingsError) as caught:
        ServiceSettings.from_env({"CHURNGUARD_API_KEYS": keys})
    message = str(caught.value)
    assert message.startswith("cannot start the service") and says in message
    assert "tiny-key-q9" not in message  # a key is a secret: never quoted


def test_a_bad_key_entry_is_named_by_position_never_quoted() -> None:
    with pytest.raises(SettingsError) as caught:
        parse_api_keys(f"{GOOD}:admin,secret-value-xyz:superuser")
    assert "entry 2" in str(caught.value) and "secret-value-xyz" not in str(caught.value)


def test_production_refuses_cors_wildcard() -> None:
    with pytest.raises(SettingsError, match="CORS origin"):
        ServiceSettings.from_env({"CHURNGUARD_API_KEYS": f"{GOOD}:admin",
                                  "CHURNGUARD_CORS_ORIGINS": "*"})


def test_development_gets_the_default_key_and_env_values_parse() -> None:
    dev = ServiceSettings.from_env({"CHURNGUARD_ENV": "development"})
    assert dev.role_of(DEVELOPMENT_KEY) == "admin" and dev.role_of("other") is None
    prod = ServiceSettings.from_env({
        "CHURNGUARD_API_KEYS": f"{GOOD}:write", "CHURNGUARD_CLOCK": "data",
        "CHURNGUARD_RATE_PER_SECOND": "5",
        "CHURNGUARD_CORS_ORIGINS": "https://a.example, https://b.example",
        "CHURNGUARD_WARM_ON_START": "false"})
    assert prod.role_of(GOOD) == "write" and prod.role_of(DEVELOPMENT_KEY) is None
    assert prod.clock == "data" and prod.rate_per_second == 5.0 and not prod.warm_on_start
    assert prod.cors_origins == ("https://a.example", "https://b.example")


def test_an_invalid_value_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="CHURNGUARD_CLOCK"):
        ServiceSettings.from_env({"CHURNGUARD_ENV": "development", "CHURNGUARD_CLOCK": "sundial"})
