"""A copy of every signed checkpoint where the database's owner cannot rewrite it.

Whoever can write the database can delete its checkpoints and rewrite the entries they covered.
Each checkpoint is therefore also appended, as one JSON line, to AUDIT_WITNESS_FILE: a file the
operator puts where the database's owner has no write access beyond appending (an append-only
mount, `chattr +a`, a log shipper, an object store's append target). The verifier checks the
database against it (audit/log/verifier.py, `kept`), and auditors may bring checkpoints they saved
earlier in the same form (`audit_verify --known-checkpoints`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from audit.log import signing

logger = logging.getLogger("steward.audit")


def witness_append(path: Path, cp: signing.SignedCheckpoint) -> None:
    """Appends one line, synced to disk (O_APPEND: written whole after whatever is there)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(cp.to_dict(), sort_keys=True) + "\n").encode()
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(descriptor, line)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def checkpoints_read(path: Path) -> Iterator[signing.SignedCheckpoint]:
    """Checkpoints from a JSON-lines file (a witness) or a JSON list (as GET /audit/checkpoints gives)."""
    from audit.log.verifier import checkpoints_from_dicts

    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        items = json.loads(stripped)
    elif stripped.startswith("{") and '"results"' in stripped[:200]:
        items = json.loads(stripped)["results"]
    else:
        items = [json.loads(line) for line in text.splitlines() if line.strip()]
    return checkpoints_from_dicts(items)
