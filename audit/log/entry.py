"""The canonical bytes of a log entry, the data its leaf hash commits to.

Pure Python, no Django: the standalone verifier recomputes every leaf hash with this module.
Changing how an entry is encoded breaks every receipt ever given out, so the format carries a
version and this module only ever adds new versions.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson

from audit.log import merkle

FORMAT_VERSION = 1

# The fields of an entry, in the order they are documented (the encoding sorts keys anyway).
ENTRY_FIELDS = (
    "v",
    "index",
    "time",
    "org",
    "actor_type",
    "actor_id",
    "actor_label",
    "action",
    "target_type",
    "target_id",
    "request_id",
    "payload_sha256",
    "commitment",
)


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON: keys sorted (by UTF-8 bytes, which is code point order), no
    whitespace, UTF-8, floats in their shortest round-trip form: orjson's output, which the
    verifier reproduces byte for byte (and nine times faster than the json module)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def payload_sha256(redacted_payload: Any) -> str:
    """The hash of the stored (redacted) payload: kept when erasure removes the payload."""
    return hashlib.sha256(canonical_json(redacted_payload)).hexdigest()


def commitment(salt: bytes, raw_payload: Any) -> str:
    """A salted commitment to the raw payload, before redaction.

    Whoever holds the raw payload and the salt (the caller, from its receipt) can prove what was
    logged; without the salt, a guessable payload cannot be confirmed from the hash alone.
    """
    return hmac.new(salt, canonical_json(raw_payload), hashlib.sha256).hexdigest()


def entry_bytes(fields: dict[str, Any]) -> bytes:
    missing = [name for name in ENTRY_FIELDS if name not in fields]
    if missing:
        raise ValueError(f"entry lacks {', '.join(missing)}")
    return canonical_json({name: fields[name] for name in ENTRY_FIELDS})


def entry_leaf_hash(fields: dict[str, Any]) -> bytes:
    return merkle.leaf_hash(entry_bytes(fields))
