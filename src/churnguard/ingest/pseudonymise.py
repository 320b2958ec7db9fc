"""Personal data: user ids pseudonymised with a keyed HMAC (the key from the environment), and
e-mail addresses and phone numbers scrubbed from free text, both in SQL."""

from __future__ import annotations

import hashlib
import os

from churnguard.config import IngestConfig
from churnguard.ingest.results import IngestError
from churnguard.schema import quote_literal


# E-mail addresses, then identity numbers, then phone numbers. Phones must look like phones: an
# international '+' number, a 3-3-4 grouped number, a national number starting with 0 in groups
# (which covers mainland Chinese landlines such as 010-12345678 and 0755 1234567), or a mainland
# Chinese mobile (11 digits from 13..19, also written 138 0013 8000 or after 86); so ratings,
# prices, dates and 'order 12345' are left alone. A mainland resident identity number is 18
# characters: a 6-digit region, the birth date (YYYYMMDD), 3 digits and a check digit or X.
# \b is RE2's ASCII word boundary, so a number right after Chinese text ('电话13800138000') is
# still found. RE2 syntax (no look-arounds).
_EMAIL_RE = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
_ID_NUMBER_RE = r"\b[1-9][0-9]{5}(18|19|20)[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9Xx]\b"
_PHONE_RES = (
    r"\+[0-9]{1,3}([ .-]?\(?[0-9]{1,4}\)?){2,5}[0-9]",
    r"\b(86[ -]?)?1[3-9][0-9]([ -]?[0-9]{4}){2}\b",
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


def _contact_sql(value_sql: str) -> str:
    """SQL: whether the text holds an e-mail address, an identity number or a phone number.

    >>> import duckdb
    >>> [duckdb.connect().execute(f"SELECT {_contact_sql('$1')}", [v]).fetchone()[0]
    ...  for v in ("x@example.com", "13800138000", "eu-west", "2024-01-31", "42")]
    [True, True, False, False, False]
    """
    patterns = (_EMAIL_RE, _ID_NUMBER_RE, *_PHONE_RES)
    return "(" + " OR ".join(f"regexp_matches({value_sql}, {quote_literal(p)})"
                             for p in patterns) + ")"


def _scrub_sql(value_sql: str) -> str:
    """SQL for the text with e-mail addresses, identity numbers and phone numbers replaced.

    >>> import duckdb
    >>> text = "邮箱 a.b@example.cn 电话13800138000 或 010-12345678, 身份证 11010519491231002X"
    >>> duckdb.connect().execute(f"SELECT {_scrub_sql('?')}", [text]).fetchone()[0]
    '邮箱 [email] 电话[phone] 或 [phone], 身份证 [id]'
    >>> duckdb.connect().execute(f"SELECT {_scrub_sql('?')}", ["order 12345, 4 stars, 19.99"]).fetchone()[0]
    'order 12345, 4 stars, 19.99'
    """
    out = f"regexp_replace({value_sql}, {quote_literal(_EMAIL_RE)}, '[email]', 'g')"
    out = f"regexp_replace({out}, {quote_literal(_ID_NUMBER_RE)}, '[id]', 'g')"
    for pattern in _PHONE_RES:
        out = f"regexp_replace({out}, {quote_literal(pattern)}, '[phone]', 'g')"
    return out
