import os
import stat

import pytest

from wina.atomic import atomic_dir, atomic_file


def _plain_mode(tmp_path):
    (tmp_path / "plain").write_text("x")
    return stat.S_IMODE((tmp_path / "plain").stat().st_mode)


def test_file_appears_only_when_complete_with_ordinary_permissions(tmp_path):
    target = tmp_path / "sub" / "a.json"
    with pytest.raises(RuntimeError):
        with atomic_file(target) as fh:
            fh.write("half")
            raise RuntimeError("crash")
    assert not target.exists() and os.listdir(target.parent) == []  # no temporary left behind
    with atomic_file(target) as fh:
        fh.write("whole")
        assert not target.exists()  # not before the block ends
    assert target.read_text() == "whole"
    assert stat.S_IMODE(target.stat().st_mode) == _plain_mode(tmp_path)


def test_dir_replaces_only_what_its_predicate_rejects(tmp_path):
    target = tmp_path / "d"
    with atomic_dir(target) as tmp:
        (tmp / "f").write_text("1")
    assert (target / "f").read_text() == "1"
    with atomic_dir(target, replace_if=lambda existing: False) as tmp:  # someone else finished first: keep theirs
        (tmp / "f").write_text("2")
    assert (target / "f").read_text() == "1"
    with atomic_dir(target, replace_if=lambda existing: True) as tmp:
        (tmp / "f").write_text("3")
    assert (target / "f").read_text() == "3" and sorted(os.listdir(tmp_path)) == ["d"]
