"""A private PostgreSQL cluster for tests, benchmarks and local development.

The cluster lives in one folder, listens on loopback only, and is started and
stopped by whoever owns it. Postgres refuses to run as root, so when we are
root the server runs as the `postgres` system user that Debian's package
creates.

Roles as on hosted Supabase: the bootstrap superuser is `supabase_admin`;
`postgres` is the project's admin, not a superuser (the stand-ins create it).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

OS_USER = "postgres"  # the system user that runs the server (Debian's package makes it)
SUPERUSER = OS_USER  # its older name, kept for code written before the two differed
BOOTSTRAP_SUPERUSER = "supabase_admin"  # the database's superuser, as on hosted Supabase
ADMIN = "postgres"  # the project's admin role: what migrations and the dashboard use


def _bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    preferred = [c for c in candidates if "/15/" in c] + candidates
    for candidate in preferred:
        if Path(candidate, "pg_ctl").exists():
            return Path(candidate)
    raise RuntimeError(
        "PostgreSQL server binaries not found: install postgresql-15 (make test does this)"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class PgCluster:
    """One cluster in `root`: data in root/data, socket and log beside it."""

    root: Path
    port: int
    durable: bool = True

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    def dsn(self, dbname: str = "postgres", user: str = ADMIN) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{dbname}"

    def _run_as_owner(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        command = args
        if os.geteuid() == 0:
            command = ["runuser", "-u", OS_USER, "--", *args]
        done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
        if done.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed: {done.stderr.strip() or done.stdout}")
        return done

    def _hand_over(self) -> None:
        if os.geteuid() != 0:
            return
        owner = pwd.getpwnam(OS_USER)
        for path in [self.root, *self.root.rglob("*")]:
            os.chown(path, owner.pw_uid, owner.pw_gid)

    @property
    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        # The server user must be able to reach its folder.
        for folder in [self.root, *self.root.parents]:
            if folder.stat().st_mode & 0o001 == 0 and folder.stat().st_uid == os.geteuid():
                os.chmod(folder, folder.stat().st_mode | 0o011)  # noqa: S103 (traverse only)
        self._hand_over()
        self._run_as_owner(
            [
                str(_bindir() / "initdb"),
                "-D", str(self.data_dir),
                "-U", BOOTSTRAP_SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ]
        )  # fmt: skip

    def start(self) -> None:
        if not self.initialised:
            self.init()
        self._hand_over()
        options = [
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={self.root}",
            "-c max_connections=200",
            "-c wal_level=logical",
        ]
        if not self.durable:
            # Throwaway clusters trade crash safety for speed.
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._run_as_owner(
            [
                str(_bindir() / "pg_ctl"),
                "start", "-w", "-t", "60",
                "-D", str(self.data_dir),
                "-l", str(self.log_file),
                "-o", " ".join(options),
            ]
        )  # fmt: skip

    def stop(self) -> None:
        if not (self.data_dir / "postmaster.pid").exists():
            return
        self._run_as_owner(
            [str(_bindir() / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(self.data_dir)]
        )

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
