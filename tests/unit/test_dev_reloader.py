"""What make dev's reload watches (infra/dev/reloader.py): every file of
functions/, shared/ and serverless.yml, and nothing Python or an editor
writes beside them, so a save always reloads and a request never reloads
for nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from infra.dev.reloader import changed, fingerprint

pytestmark = pytest.mark.unit


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_saved_added_or_removed_file_is_a_change_and_bytecode_or_swap_files_are_not(
    tmp_path: Path,
) -> None:
    handler = write(tmp_path / "functions" / "hello" / "handler.py", "x = 1\n")
    write(tmp_path / "shared" / "http" / "errors.py", "y = 2\n")
    write(tmp_path / "serverless.yml", "functions: {}\n")
    write(tmp_path / "infra" / "elsewhere.py", "not watched\n")
    before = fingerprint(tmp_path)
    assert sorted(before) == [
        "functions/hello/handler.py", "serverless.yml", "shared/http/errors.py"
    ]  # fmt: skip

    # Python's and editors' own files beside the code change nothing
    write(tmp_path / "functions" / "hello" / "__pycache__" / "handler.cpython-311.pyc", "b")
    write(tmp_path / "functions" / "hello" / "stray.pyc", "b")
    write(tmp_path / "functions" / "hello" / ".handler.py.swp", "b")
    write(tmp_path / "functions" / "hello" / "handler.py~", "b")
    write(tmp_path / "shared" / ".mypy_cache" / "x.json", "{}")
    assert changed(before, fingerprint(tmp_path)) == []

    # A save of the same size is seen by its time
    stat = handler.stat()
    handler.write_text("x = 2\n")
    os.utime(handler, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    after = fingerprint(tmp_path)
    assert changed(before, after) == ["functions/hello/handler.py"]

    # A new file and a removed one are changes too
    write(tmp_path / "shared" / "new.py", "z = 3\n")
    (tmp_path / "serverless.yml").unlink()
    assert changed(after, fingerprint(tmp_path)) == ["serverless.yml", "shared/new.py"]


def test_a_project_without_a_watched_folder_has_only_what_is_there(tmp_path: Path) -> None:
    write(tmp_path / "serverless.yml", "functions: {}\n")
    assert list(fingerprint(tmp_path)) == ["serverless.yml"]
