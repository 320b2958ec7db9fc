"""Personal data: user ids pseudonymised with a keyed HMAC (the key from the environment), and
e-mail addresses and phone numbers scrubbed from free text, both in SQL."""

from __future__ import annotations

import hashlib
import os

from churnguard.config import IngestConfig
from churnguard.ingest.results import IngestError
from churnguard.schema import quote_literal


# E-mail addresses, then phone numbers. Phones must look like phones: an international '+'
# number, a 3-3-4 grouped number, or a national number starting with 0 in groups; so ratings,
# prices, dates and 'order 12345' are left alone. RE2 syntax (no look-arounds).
_EMAIL_RE = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
_PHONE_RES = (
    r"\+[0-9]{1,3}([ .-]?\(?[0-9]{1,4}\)?){2,5}[0-9]",
    r"\(?\b[0-9]{3}\)?[ .-][0-9]{3}[ .-][0-9]{4}\b",
    r"\b0[0-9]{2,4}[ /.-]?[0-9]{3,4}[ .-]?[0-9]{3,5}\b",
)


def _pseudonym_key(config: IngestConfig) -> bytes:
    key = os.environ.get(config.pseudonym_key_env, "")
    if not key:
        raise IngestError(
            f"ingest.pseudonymise is on but the environment variable {config.pseudonym_key_env} "
            "is not set; set it to a secret key (the same one every time, or ids will not match "
            "across loads), e.g. export "
            f"{config.pseudonym_key_env}=$(python -c 'import secrets; print(secrets.token_hex(32))')"
        )
    return key.encode("utf-8")


def _hmac_sql(value_sql: str, key: bytes) -> str:
    """HMAC-SHA256 (RFC 2104) of a text value, in SQL, first 32 hex digits.

    H((K' ^ opad) || H((K' ^ ipad) || m)) with K' the key padded to SHA-256's 64-byte block.
    """
    block = 64
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key.ljust(block, b"\0")
    ipad = bytes(b ^ 0x36 for b in key).hex()
    opad = bytes(b ^ 0x5C for b in key).hex()
    inner = f"unhex(sha256(unhex('{ipad}') || encode({value_sql})))"
    return f"CASE WHEN {value_sql} IS NULL THEN NULL ELSE left(sha256(unhex('{opad}') || {inner}), 32) END"


def _scrub_sql(value_sql: str) -> str:
    out = f"regexp_replace({value_sql}, {quote_literal(_EMAIL_RE)}, '[email]', 'g')"
    for pattern in _PHONE_RES:
        out = f"regexp_replace({out}, {quote_literal(pattern)}, '[phone]', 'g')"
    return out
