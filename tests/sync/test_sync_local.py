"""The publisher with a local folder as the source (e.g. a model built in CI, or a laptop)."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.sync.sources import LocalSource
from tests.sync.conftest import hidden_leftovers, onnx_model, run_sync, sha256, visible


@pytest.fixture
def source(tmp_path: Path) -> Path:
    root = tmp_path / "export"
    for model, versions in {"resnet": (1, 2), "bert": (7,)}.items():
        for v in versions:
            (root / model / str(v)).mkdir(parents=True)
            (root / model / str(v) / "model.onnx").write_bytes(onnx_model(v))
    (root / "bert" / "config.pbtxt").write_text('name: "bert"\n')
    (root / "resnet" / ".DS_Store").write_bytes(b"junk")
    return root


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    path = tmp_path / "models"
    path.mkdir()
    return path


def test_local_folder_is_published_then_up_to_date(source: Path, dest: Path) -> None:
    first = run_sync("--source", str(source), "--dest", str(dest))

    assert first.code == 0, first.out
    assert visible(dest) == {"bert": [7], "resnet": [1, 2]}
    assert (dest / "resnet/2/model.onnx").read_bytes() == onnx_model(2)
    assert (dest / "bert/config.pbtxt").read_text() == 'name: "bert"\n'
    assert not (dest / "resnet/.DS_Store").exists()

    second = run_sync("--source", f"file://{source}", "--dest", str(dest))
    assert second.code == 0, second.out
    assert "up to date: 2 models, nothing to copy" in second.out


def test_local_copy_is_checked_against_the_source(
    source: Path, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fetch = LocalSource.fetch

    def bad_disk(self: LocalSource, item, path: Path, progress) -> dict[str, str]:  # type: ignore[no-untyped-def]
        digests = real_fetch(self, item, path, progress)
        data = bytearray(path.read_bytes())
        data[0] ^= 0x01  # the copy differs from what was read
        path.write_bytes(bytes(data))
        return digests

    monkeypatch.setattr(LocalSource, "fetch", bad_disk)
    result = run_sync("--source", str(source), "--dest", str(dest))

    assert result.code == 4, result.out
    assert "checksum mismatch" in result.out
    assert visible(dest) == {}
    assert hidden_leftovers(dest) == []


def test_local_published_sha256_is_honoured(source: Path, dest: Path) -> None:
    (source / "resnet/2/SHA256SUMS").write_text(f"{sha256(b'other')}  model.onnx\n")

    result = run_sync("--source", str(source), "--dest", str(dest))

    assert result.code == 4, result.out
    assert visible(dest) == {"bert": [7], "resnet": [1]}


def test_missing_local_folder_is_a_source_error(tmp_path: Path, dest: Path) -> None:
    result = run_sync("--source", str(tmp_path / "nope"), "--dest", str(dest))
    assert result.code == 3, result.out
    assert "does not exist" in result.out


def test_disk_full_mid_copy_is_a_destination_error(
    source: Path, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    def no_space(self: LocalSource, item, path: Path, progress) -> dict[str, str]:  # type: ignore[no-untyped-def]
        path.write_bytes(b"\0" * 10)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(LocalSource, "fetch", no_space)
    result = run_sync("--source", str(source), "--dest", str(dest))

    assert result.code == 6, result.out
    assert "No space left on device" in result.out
    assert visible(dest) == {}
    assert hidden_leftovers(dest) == []


def test_staging_failure_is_a_destination_error(
    source: Path, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    import service.sync.publish as publish

    def read_only(parent: Path, label: str) -> Path:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(publish, "staging_dir", read_only)
    result = run_sync("--source", str(source), "--dest", str(dest))

    assert result.code == 6, result.out
    assert "Read-only file system" in result.out
    assert visible(dest) == {}
