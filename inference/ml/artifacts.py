"""Model archives: checked before anything is kept, unpacked without surprises."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, BinaryIO

from inference.ml.words import _

MAX_MEMBERS = 2000
ZIP_MAGIC = b"PK\x03\x04"
GZIP_MAGIC = b"\x1f\x8b"


class ArchiveError(ValueError):
    """The archive is unsafe or unusable; the message says why, for a person."""


def sha256_stream(handle: IO[bytes] | BinaryIO, chunk: int = 1 << 20) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    while block := handle.read(chunk):
        digest.update(block)
        size += len(block)
    return digest.hexdigest(), size


def sha256_file(path: Path) -> str:
    with path.open("rb") as handle:
        return sha256_stream(handle)[0]


@dataclass(frozen=True)
class Member:
    name: str  # normalised relative POSIX path
    size: int


def _safe_name(name: str) -> str:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or any(part == ".." for part in path.parts) or name.startswith("/"):
        raise ArchiveError(_('the archive entry %(name)s points outside the archive') % {"name": f"{name!r}"})
    parts = [p for p in path.parts if p not in ("", ".")]
    return "/".join(parts)


def _members(archive: Path) -> Iterator[tuple[Member, object]]:
    with archive.open("rb") as handle:
        magic = handle.read(4)
    if magic.startswith(ZIP_MAGIC):
        with zipfile.ZipFile(archive) as zipped:
            for zinfo in zipped.infolist():
                if stat.S_ISLNK(zinfo.external_attr >> 16):
                    raise ArchiveError(_('the archive entry %(filename)s is a link; links are not allowed') % {"filename": f"{zinfo.filename!r}"})
                if zinfo.is_dir():
                    continue
                yield Member(_safe_name(zinfo.filename), zinfo.file_size), zinfo
    elif magic.startswith(GZIP_MAGIC):
        with tarfile.open(archive, "r:gz") as tarred:
            for tinfo in tarred:
                if tinfo.issym() or tinfo.islnk():
                    raise ArchiveError(_('the archive entry %(name)s is a link; links are not allowed') % {"name": f"{tinfo.name!r}"})
                if tinfo.isdir():
                    continue
                if not tinfo.isfile():
                    raise ArchiveError(_('the archive entry %(name)s is not a regular file') % {"name": f"{tinfo.name!r}"})
                yield Member(_safe_name(tinfo.name), tinfo.size), tinfo
    else:
        raise ArchiveError(_('the upload is neither a .zip nor a .tar.gz archive'))


def list_members(archive: Path, *, max_unpacked_bytes: int) -> list[Member]:
    """Lists an archive's files, refusing traversal, links, bombs and odd entries."""
    members: list[Member] = []
    total = 0
    try:
        for member, _data in _members(archive):
            members.append(member)
            total += member.size
            if len(members) > MAX_MEMBERS:
                raise ArchiveError(_('the archive holds more than %(max_members)s files') % {"max_members": MAX_MEMBERS})
            if total > max_unpacked_bytes:
                raise ArchiveError(_('the archive unpacks to more than %(max_unpacked_bytes)s bytes') % {"max_unpacked_bytes": max_unpacked_bytes})
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveError(_('the archive is damaged: %(exc)s') % {"exc": exc}) from None
    return members


def common_root(members: list[Member]) -> str:
    """The folder every file sits in, if the archive wraps its files in one (as `zip -r dir` does)."""
    firsts = {m.name.split("/", 1)[0] for m in members}
    if len(firsts) == 1 and all("/" in m.name for m in members):
        return firsts.pop() + "/"
    return ""


def extract(archive: Path, destination: Path, *, max_unpacked_bytes: int) -> None:
    """Unpacks into `destination` (created), flattening one wrapping folder, with nothing unsafe.

    Each member is copied within what its header declares and within `max_unpacked_bytes` in all
    (a header may lie), and a damaged member (bad CRC, truncated data) is an ArchiveError.
    """
    members = list_members(archive, max_unpacked_bytes=max_unpacked_bytes)
    root = common_root(members)
    destination.mkdir(parents=True, exist_ok=True)
    budget = [max_unpacked_bytes]
    with archive.open("rb") as handle:
        magic = handle.read(4)
    try:
        if magic.startswith(ZIP_MAGIC):
            with zipfile.ZipFile(archive) as zipped:
                for zinfo in zipped.infolist():
                    if zinfo.is_dir():
                        continue
                    name = _safe_name(zinfo.filename)
                    _write(destination / name[len(root):], zipped.open(zinfo), name, zinfo.file_size, budget)
        else:
            with tarfile.open(archive, "r:gz") as tarred:
                for tinfo in tarred:
                    if not tinfo.isfile():
                        continue
                    source = tarred.extractfile(tinfo)
                    assert source is not None
                    name = _safe_name(tinfo.name)
                    _write(destination / name[len(root):], source, name, tinfo.size, budget)
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError) as exc:
        raise ArchiveError(_('the archive is damaged (%(name)s: %(value)s)') % {"name": type(exc).__name__, "value": str(exc)[:120]}) from None


def _write(target: Path, source: IO[bytes], name: str, declared: int, budget: list[int]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with source, target.open("wb") as out:
        while block := source.read(1 << 20):
            written += len(block)
            budget[0] -= len(block)
            if written > declared:
                raise ArchiveError(_('the archive entry %(name)s holds more data than its header declares') % {"name": f"{name!r}"})
            if budget[0] < 0:
                raise ArchiveError(_('the archive unpacks to more than its limit'))
            out.write(block)


def pack_directory(folder: Path) -> bytes:
    """A .zip of a model folder (for models Steward builds itself)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                bundle.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def unpack_cached(archive: Path, cache_dir: Path, sha256: str, *, max_unpacked_bytes: int) -> Path:
    """The unpacked folder for an archive of known hash, unpacked once per machine.

    Unpacks to a temporary folder and renames it into place, so that concurrent workers never
    see half a model.
    """
    target = cache_dir / sha256
    if target.is_dir():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{sha256[:12]}-", dir=cache_dir))
    try:
        extract(archive, temporary, max_unpacked_bytes=max_unpacked_bytes)
        os.rename(temporary, target)
    except OSError:
        shutil.rmtree(temporary, ignore_errors=True)
        if not target.is_dir():
            raise
    return target
