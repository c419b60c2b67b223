"""A copy of the project to change freely (scaffold a function, edit a
handler under a running make dev): the files git would commit, as they are
now (so uncommitted work is tested too), modification times kept (so
bootstrap sees nothing to reinstall), with the installed .venv and
node_modules linked rather than copied."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINKED = (".venv", "node_modules")
# What runs in a copy make, and nothing of the project's own: left out of snapshots.
GENERATED = {".venv", "node_modules", ".local", ".serverless", ".serverless-snapstart",
             "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis"}  # fmt: skip


def copy_project(target: Path) -> Path:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode()  # fmt: skip
    for relative in filter(None, listed.split("\0")):
        source = ROOT / relative
        if not source.is_file():
            continue  # deleted in the work tree, not yet in the index
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / relative)
    for name in LINKED:
        (target / name).symlink_to(ROOT / name)
    return target


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file of the project in `root` (what git would see), by path."""
    files = {}
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [d for d in subfolders if d not in GENERATED]
        for name in names:
            path = Path(folder) / name
            files[str(path.relative_to(root))] = path.read_bytes()
    return files
