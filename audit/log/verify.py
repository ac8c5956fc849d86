"""Standalone verifier of audit log exports and evidence bundles. Needs no Django and no database:

    python -m audit.log.verify EXPORT.zip [--public-key KEY.pem]

EXPORT is a log export (entries.jsonl, checkpoints.json) or an evidence bundle, such as a
compliance export (manifest.json, manifest.sig: see audit.log.evidence), zipped or unpacked.
Exit status 0 when it verifies, 1 with the first fault (its kind, and the index or the file at
fault) otherwise, 2 when it cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from audit.log import evidence, signing
from audit.log.verifier import Report, checkpoints_from_dicts, verify_log
from audit.log.witness import checkpoints_read


class Bundle:
    """A zip file or a folder holding entries.jsonl, checkpoints.json and public_key.pem."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.zip = zipfile.ZipFile(path) if path.is_file() else None

    def names(self) -> list[str]:
        if self.zip is not None:
            return [info.filename for info in self.zip.infolist() if not info.is_dir()]
        return [p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if p.is_file()]

    def read(self, name: str) -> bytes:
        if self.zip is not None:
            return self.zip.read(name)
        return (self.path / name).read_bytes()

    def entries(self) -> Iterator[dict[str, Any]]:
        if self.zip is not None:
            with self.zip.open("entries.jsonl") as handle:
                for line in handle:
                    if line.strip():
                        yield json.loads(line)
        else:
            with (self.path / "entries.jsonl").open("rb") as handle:
                for line in handle:
                    if line.strip():
                        yield json.loads(line)


def verify_bundle(path: Path, public_key_pem: bytes | None = None, *,
                  known: list[signing.SignedCheckpoint] | None = None) -> Report | evidence.EvidenceReport:
    bundle = Bundle(path)
    key = signing.load_public_key(public_key_pem or bundle.read("public_key.pem"))
    names = bundle.names()
    if evidence.MANIFEST in names:
        return evidence.verify_evidence(bundle.read, names, key)
    checkpoints = list(checkpoints_from_dicts(json.loads(bundle.read("checkpoints.json"))))
    return verify_log(bundle.entries(), checkpoints, key, kept=known or [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m audit.log.verify", description=__doc__.split("\n\n")[0])
    parser.add_argument("export", type=Path, help="the export (.zip) or its unpacked folder")
    parser.add_argument("--public-key", type=Path, help="the log's public key (PEM), obtained apart")
    parser.add_argument("--known-checkpoints", type=Path, action="append", default=[],
                        help="signed checkpoints saved earlier (JSON lines or a JSON list): each must verify "
                             "against the export's entries and be among its checkpoints")
    args = parser.parse_args(argv)
    try:
        pinned = args.public_key.read_bytes() if args.public_key else None
        if pinned is None:
            print("warning: no --public-key given; trusting the key inside the export", file=sys.stderr)
        known = [cp for path in args.known_checkpoints for cp in checkpoints_read(path)]
        report = verify_bundle(args.export, pinned, known=known)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        print(f"cannot read the export: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    # 0: every entry verified; 3: entries after the last signed checkpoint, not verified; 1: a fault
    return 0 if report.ok else (3 if report.verdict == "unverified_tail" else 1)


if __name__ == "__main__":
    sys.exit(main())
