"""Pseudonymise customer ids with a keyed hash and drop direct identifiers at ingestion (DESIGN.md "Privacy").

Real customer tables can hold names, phone numbers, ID numbers and the bank's own customer numbers. Two rules
keep them out of models, MLflow, logs and reports:

- **Keyed pseudonyms.** :func:`pseudonymise` maps each id to ``blake2b(str(id), key=key, digest_size=8)`` read
  as a big-endian unsigned 64-bit integer and shifted right by one bit: a non-negative int63 that fits the
  canonical int64 ``customer_id``. Without the key nobody can recompute the map from a list of candidate ids
  (an unkeyed hash of an 8-digit customer number is reversed by trying all 10^8 of them). The same key gives
  the same pseudonym in every run, so scores can be joined back inside the bank, where the key is held.
- **Direct identifiers dropped.** :func:`drop_direct_identifiers` removes every column whose name matches
  :data:`DIRECT_IDENTIFIER_PATTERNS` (names, phones, emails, addresses, national and document ids, account and
  card numbers), before any other step sees the table.

The key comes from the environment (:func:`pseudonymisation_key`, ``BANKSEG_PSEUDONYM_KEY``). Production must set
it: without it a fixed development key is used, which anyone with this source code can reproduce, and a
warning says so (once per process).

Speed: hashing runs once per *distinct* id in a Python loop over :mod:`hashlib` (a keyed state copied per id), and
the result is broadcast back with numpy: a million distinct ids took about 4 s on the shared 2-core machine
while it ran at a load average of 10 (so roughly 1 s on an idle core); about 60% of it is hashing, the rest
turning ids into text and factorising.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import string
from collections.abc import Iterable

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

KEY_ENV = "BANKSEG_PSEUDONYM_KEY"
# Public by construction: whoever reads this file can recompute every pseudonym made with it.
DEVELOPMENT_KEY = b"bankseg-development-pseudonym-key-not-for-production"
MIN_KEY_BYTES = 16
MAX_KEY_BYTES = 64  # blake2b's key limit

# Regular expressions matched against a normalised column name (see normalise_column_name): snake_case, lower
# case, so "FirstName", "first name" and "FIRST_NAME" all read "first_name". Each entry names what it catches.
DIRECT_IDENTIFIER_PATTERNS: dict[str, str] = {
    # "name" alone, or a person's name ("surname", "client_name"); "product_name" is not a person.
    "name": (
        r"^names?$|(^|_)(sur|fore|given|family|first|last|middle|full|maiden|nick|customer|client|holder"
        r"|contact|person)_?names?$"
    ),
    "phone": r"(^|_)(tele?phone|phone|tel|fax|mobile|cell|cellphone)(_?(no|num|number))?$",
    "email": r"(^|_)e_?mail(_?address)?$",
    "address": r"(^|_)(address|street|postcode|post_code|postal_code|zip|zip_code|zipcode)(_?\d+)?$",
    "id_number": (
        r"(^|_)(id_?(number|no|card|card_no|card_number)|national_id|passport(_?(no|number))?|ssn"
        r"|social_security(_?number)?|tax_id|identity(_?(number|card|no))?|birth_number)$"
    ),
    "account_number": r"(^|_)(account|acct|card|bank_card)_?(no|num|number)$|(^|_)iban$",
    "ip_address": r"(^|_)ip(_?address)?$",
    # Chinese column names: 姓名 name, 手机 / 电话 phone, 身份证 ID card, 证件号 document number, 邮箱 e-mail,
    # 地址 / 住址 address, 卡号 card number, 账号 account number.
    "zh": r"(姓名|手机|电话|身份证|证件号|邮箱|地址|住址|卡号|账号)",
}
_COMPILED = {what: re.compile(pattern) for what, pattern in DIRECT_IDENTIFIER_PATTERNS.items()}

_warned_development_key = False


def normalise_column_name(name: object) -> str:
    """A column name in lower snake_case: ``CustomerId`` -> ``customer_id``, ``e-mail`` -> ``e_mail``."""
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", str(name).strip())
    return re.sub(r"[^0-9a-z\u4e00-\u9fff]+", "_", text.lower()).strip("_")


def identifier_kind(name: object) -> str | None:
    """Which kind of direct identifier a column name looks like (a key of the patterns), or None."""
    normalised = normalise_column_name(name)
    for what, pattern in _COMPILED.items():
        if pattern.search(normalised):
            return what
    return None


def drop_direct_identifiers(frame: pd.DataFrame, keep: Iterable[str] = ()) -> tuple[pd.DataFrame, list[str]]:
    """A copy of ``frame`` without its direct-identifier columns, and the names of the columns dropped.

    A column is dropped when its normalised name matches :data:`DIRECT_IDENTIFIER_PATTERNS`; ``keep`` names
    columns to spare (a false positive the caller has checked). The values are never looked at, so nothing
    from them can end up in a log: callers may log the returned column names.
    """
    spared = set(keep)
    dropped = [str(c) for c in frame.columns if c not in spared and identifier_kind(c) is not None]
    return frame.drop(columns=dropped), dropped


def pseudonymisation_key(environ: dict[str, str] | None = None) -> bytes:
    """The pseudonymisation key from ``BANKSEG_PSEUDONYM_KEY``, or the development key with a warning.

    The variable holds hex (an even number of hex digits, read as bytes) or any other text (its UTF-8 bytes);
    it must give 16 to 64 bytes. Unset, the fixed :data:`DEVELOPMENT_KEY` is returned and a warning is logged
    once per process: fine for tests and the simulated bank, never for real customers. ``environ`` replaces
    ``os.environ`` (tests).
    """
    global _warned_development_key
    env = os.environ if environ is None else environ
    value = env.get(KEY_ENV)
    if value is None:
        if not _warned_development_key:
            log.warning(
                "%s is not set: pseudonymising with the public development key. Anyone with the bankseg source "
                "can reverse these pseudonyms; set %s (16-64 bytes, hex or text) for real customer data.",
                KEY_ENV, KEY_ENV,
            )
            _warned_development_key = True
        return DEVELOPMENT_KEY
    is_hex = len(value) % 2 == 0 and len(value) > 0 and all(c in string.hexdigits for c in value)
    key = bytes.fromhex(value) if is_hex else value.encode("utf-8")
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise ValueError(
            f"{KEY_ENV} must give {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes, got {len(key)} "
            f"({'hex' if is_hex else 'text'}); e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`"
        )
    return key


def pseudonymise(values, key: bytes) -> np.ndarray:
    """Keyed-hash pseudonyms (non-negative int64) of ids, one per value, in input order.

    The hashed form of an id is its text: integers and whole floats as decimal digits (``15634602`` and
    ``15634602.0`` give the same pseudonym), text as it is. Missing ids are refused (ValueError naming the row
    positions): a missing id has no pseudonym.
    """
    if not isinstance(key, bytes | bytearray) or not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise ValueError(f"key must be {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes")
    series = pd.Series(values, copy=False) if not isinstance(values, pd.Series) else values
    missing = series.isna().to_numpy()
    if missing.any():
        rows = np.flatnonzero(missing)
        raise ValueError(f"cannot pseudonymise missing ids: {missing.sum()} rows, e.g. rows {rows[:5].tolist()}")
    codes, uniques = pd.factorize(series, sort=False)
    texts = _id_texts(pd.Index(uniques))
    # Keying a blake2b state costs as much as hashing a short id: key it once and copy the keyed state.
    keyed = hashlib.blake2b(key=bytes(key), digest_size=8)

    def digest(text: str) -> bytes:
        state = keyed.copy()
        state.update(text.encode("utf-8"))
        return state.digest()

    digests = b"".join(map(digest, texts))
    hashed = (np.frombuffer(digests, dtype=">u8") >> np.uint64(1)).astype(np.int64)
    return hashed[codes]


def _id_texts(uniques: pd.Index) -> list[str]:
    """The text each distinct id is hashed as (see :func:`pseudonymise`)."""
    if pd.api.types.is_bool_dtype(uniques.dtype):
        raise ValueError("ids must be integers or text, got booleans")
    if pd.api.types.is_integer_dtype(uniques.dtype):
        return list(map(str, uniques.to_numpy(dtype=np.int64).tolist()))
    if pd.api.types.is_float_dtype(uniques.dtype):
        v = uniques.to_numpy(dtype=np.float64)
        if not (np.isfinite(v).all() and (v == np.trunc(v)).all()):
            raise ValueError("float ids must be whole numbers (a fraction in an id means it was mangled)")
        return list(map(str, v.astype(np.int64).tolist()))
    return list(map(str, uniques))
