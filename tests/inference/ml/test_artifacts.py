"""Archives are refused when unsafe: traversal, links, bombs, not archives; and unpack whole."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile

import pytest

from inference.ml import artifacts
from tests.inference.factories import zip_of


def write(tmp_path, data: bytes, name: str = "a.bin"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


class ArchiveTests:
    def test_zip_with_wrapping_folder_unpacks_flat(self, tmp_path) -> None:
        path = write(tmp_path, zip_of({"model/config.json": b"{}", "model/x/y.txt": b"y"}))
        artifacts.extract(path, tmp_path / "out", max_unpacked_bytes=10_000)
        assert (tmp_path / "out" / "config.json").read_bytes() == b"{}"
        assert (tmp_path / "out" / "x" / "y.txt").is_file()

    @pytest.mark.parametrize("name", ["../evil.txt", "/etc/evil", "a/../../evil"])
    def test_traversal_is_refused(self, tmp_path, name) -> None:
        path = write(tmp_path, zip_of({name: b"x"}))
        with pytest.raises(artifacts.ArchiveError, match="outside the archive"):
            artifacts.extract(path, tmp_path / "out", max_unpacked_bytes=10_000)
        assert not (tmp_path / "evil.txt").exists()

    def test_tar_symlink_is_refused(self, tmp_path) -> None:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
            link = tarfile.TarInfo("config.json")
            link.type = tarfile.SYMTYPE
            link.linkname = "/etc/passwd"
            bundle.addfile(link)
        path = write(tmp_path, buffer.getvalue())
        with pytest.raises(artifacts.ArchiveError, match="link"):
            artifacts.list_members(path, max_unpacked_bytes=10_000)

    def test_zip_symlink_is_refused(self, tmp_path) -> None:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as bundle:
            info = zipfile.ZipInfo("link")
            info.external_attr = (0o120777 << 16)
            bundle.writestr(info, "/etc/passwd")
        path = write(tmp_path, buffer.getvalue())
        with pytest.raises(artifacts.ArchiveError, match="link"):
            artifacts.list_members(path, max_unpacked_bytes=10_000)

    def test_bomb_is_refused_by_unpacked_size(self, tmp_path) -> None:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
            bundle.writestr("big", b"\0" * 5_000_000)
        path = write(tmp_path, buffer.getvalue())
        assert path.stat().st_size < 50_000
        with pytest.raises(artifacts.ArchiveError, match="unpacks to more than"):
            artifacts.list_members(path, max_unpacked_bytes=1_000_000)

    def test_not_an_archive(self, tmp_path) -> None:
        with pytest.raises(artifacts.ArchiveError, match=r"neither a \.zip nor a \.tar\.gz"):
            artifacts.list_members(write(tmp_path, b"hello"), max_unpacked_bytes=10)

    def test_damaged_archive(self, tmp_path) -> None:
        data = zip_of({"a": b"x" * 1000})
        with pytest.raises(artifacts.ArchiveError):
            artifacts.extract(write(tmp_path, data[:60]), tmp_path / "o", max_unpacked_bytes=10_000)

    def test_unpack_cached_is_atomic_and_reused(self, tmp_path) -> None:
        path = write(tmp_path, zip_of({"a.txt": b"a"}))
        digest = artifacts.sha256_file(path)
        first = artifacts.unpack_cached(path, tmp_path / "cache", digest, max_unpacked_bytes=100)
        os.utime(first)
        again = artifacts.unpack_cached(path, tmp_path / "cache", digest, max_unpacked_bytes=100)
        assert first == again and (first / "a.txt").read_text() == "a"
        assert [p.name for p in (tmp_path / "cache").iterdir()] == [digest]
