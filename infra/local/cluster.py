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
CRON_DATABASE = "postgres"  # pg_cron's cron.database_name, as on hosted Supabase


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

    def _pg_ctl_command(self, *args: str) -> str:
        """A pg_ctl command line for this cluster, as a person would type it."""
        runner = f"runuser -u {SUPERUSER} -- " if os.geteuid() == 0 else ""
        return f"{runner}{_bindir() / 'pg_ctl'} {' '.join(args)} -D {self.data_dir}"

    def stop_leftover(self) -> int | None:
        """Stops a server still running on this data folder from an earlier
        owner that died without stopping it (a crash, SIGKILL): pg_ctl would
        otherwise refuse to start. Returns its pid, or None if there was none."""
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return None
        status_command = [str(_bindir() / "pg_ctl"), "status", "-D", str(self.data_dir)]
        if os.geteuid() == 0:  # pg_ctl refuses to run as root
            status_command = ["runuser", "-u", SUPERUSER, "--", *status_command]
        status = subprocess.run(status_command, capture_output=True, text=True, check=False)  # noqa: S603
        if status.returncode != 0:
            return None  # a stale pid file: pg_ctl start deals with it
        try:
            pid = int(pid_file.read_text().split()[0])
        except (OSError, IndexError, ValueError):
            pid = 0
        try:
            self._run_as_owner(
                [str(_bindir() / "pg_ctl"), "stop", "-w", "-t", "30", "-m", "fast",
                 "-D", str(self.data_dir)]
            )  # fmt: skip
        except RuntimeError as exc:
            raise RuntimeError(
                f"a PostgreSQL left running on {self.data_dir} by an earlier run (pid {pid})"
                f" would not stop: {exc}. Read {self.log_file}, then run"
                f" `{self._pg_ctl_command('stop', '-m', 'immediate')}`"
            ) from None
        return pid

    def start(self) -> None:
        if not (_bindir().parent / "lib" / "pg_cron.so").exists():
            raise RuntimeError(
                "pg_cron is not installed for PostgreSQL"
                f" {_bindir().parent.name}: run scripts/bootstrap.sh (make test and make dev do)"
            )
        if not self.initialised:
            self.init()
        self._hand_over()
        self.stop_leftover()
        options = [
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={self.root}",
            "-c max_connections=200",
            "-c wal_level=logical",
            # pg_cron as on hosted Supabase: preloaded, its jobs kept in the
            # `postgres` database (the project's database there, and make
            # dev's here); a job connects back over loopback as its owner.
            "-c shared_preload_libraries=pg_cron",
            f"-c cron.database_name={CRON_DATABASE}",
            "-c cron.host=127.0.0.1",
        ]
        if not self.durable:
            # Throwaway clusters trade crash safety for speed.
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        try:
            self._run_as_owner(
                [
                    str(_bindir() / "pg_ctl"),
                    "start", "-w", "-t", "60",
                    "-D", str(self.data_dir),
                    "-l", str(self.log_file),
                    "-o", " ".join(options),
                ]
            )  # fmt: skip
        except RuntimeError as exc:
            log = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
            last = [line for line in log.splitlines() if line.strip()][-4:]
            said = " ".join(str(exc).split()).rstrip(".")
            raise RuntimeError(
                f"PostgreSQL did not start on 127.0.0.1:{self.port} ({said}). Its log ends:\n  "
                + "\n  ".join(last)
                + f"\nRead {self.log_file};"
                f" `{self._pg_ctl_command('status')}` shows whether a server runs on this folder"
            ) from None

    def stop(self) -> None:
        if not (self.data_dir / "postmaster.pid").exists():
            return
        self._run_as_owner(
            [str(_bindir() / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(self.data_dir)]
        )

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
