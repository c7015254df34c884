"""Write-then-rename, the one way this project writes a file or folder that others may read.

A reader never sees a half-written file: the content goes into a private temporary name beside the target and
is renamed into place only when complete; on an exception the temporary is removed and the target is left as
it was. Parallel writers (Hydra's joblib launcher) each use their own temporary name. Files and folders get the
permissions an ordinary ``open()`` / ``mkdir`` would give them under the process's umask (``mkstemp`` alone
would make them private).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_file(path: Path | str, mode: str = "w") -> Iterator:
    """``with atomic_file(p) as fh: fh.write(...)``; ``fh.name`` is the temporary path (to verify it before the
    rename, e.g. a checksum). ``mode`` is ``"w"`` or ``"wb"``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    try:
        with open(tmp, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_dir(path: Path | str, replace_if: Callable[[Path], bool] = lambda existing: True) -> Iterator[Path]:
    """``with atomic_dir(p) as tmp: <fill tmp>``; then ``tmp`` becomes ``p``. If ``p`` exists by then (another
    process finished first), it is replaced only where ``replace_if(p)`` says so (e.g. it fails verification)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.part-"))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
        if not path.exists() or replace_if(path):
            shutil.rmtree(path, ignore_errors=True)
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
