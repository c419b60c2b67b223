"""The stand-in extensions kept in infra/local/extensions (pg_net), and
where PostgreSQL looks for them. scripts/bootstrap.sh copies them there."""

from __future__ import annotations

import glob
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "extensions"


def extension_dir() -> Path:
    """PostgreSQL 15's extension folder (Debian layout), else the newest."""
    found = sorted(glob.glob("/usr/share/postgresql/*/extension"), reverse=True)
    preferred = [f for f in found if "/15/" in f] + found
    if not preferred:
        raise RuntimeError("PostgreSQL's extension folder not found: run scripts/bootstrap.sh")
    return Path(preferred[0])


def check_installed() -> None:
    """Raises with the fix when an installed file is missing or stale."""
    target = extension_dir()
    for source in sorted(SOURCE.iterdir()):
        installed = target / source.name
        if not installed.exists() or installed.read_bytes() != source.read_bytes():
            raise RuntimeError(
                f"{installed} is missing or out of date: run scripts/bootstrap.sh"
                " (it installs the local stand-in extensions)"
            )
