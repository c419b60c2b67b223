"""`make dev`'s ports, checked before anything starts: each one a number,
no two the same, none already taken. A taken one is named with what holds
it, when this machine lets us see (Linux's /proc: the listening socket's
inode, then the process whose file descriptors include it)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path


class PortProblem(RuntimeError):
    """One line: which port, what is wrong, what to do."""


@dataclass(frozen=True)
class Port:
    variable: str  # the setting that moves it, e.g. PORT
    what: str  # what make dev serves there
    number: int

    @property
    def label(self) -> str:
        return f"{self.number} ({self.variable}, {self.what})"


def parse(variable: str, value: str) -> int:
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= 65535:
        raise PortProblem(f"{variable}={value!r} is not a port number (1-65535)")
    return int(value)


def check(ports: list[Port], host: str = "127.0.0.1") -> None:
    """Raises PortProblem naming every port that is shared or taken."""
    by_number: dict[int, Port] = {}
    for port in ports:
        if port.number in by_number:
            other = by_number[port.number]
            raise PortProblem(
                f"{port.variable} and {other.variable} are both {port.number}: give each its"
                f" own port (e.g. {port.variable}={_suggest(port.number)})"
            )
        by_number[port.number] = port
    taken = [port for port in ports if not _free(host, port.number)]
    if taken:
        held = "; ".join(f"port {p.label} is in use{_by(p.number)}" for p in taken)
        fixes = " ".join(f"{p.variable}=..." for p in taken)
        raise PortProblem(f"{held}: stop what holds it, or choose a free port with {fixes}")


def _free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the servers themselves bind (connections of an earlier run left
        # in TIME_WAIT do not count as taken).
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _suggest(port: int) -> int:
    return port + 10 if port + 10 <= 65535 else port - 10


def _by(port: int) -> str:
    pid = holder(port)
    if pid is None:
        return ""
    command = _command(pid)
    return f" by pid {pid}" + (f" ({command})" if command else "")


def holder(port: int) -> int | None:
    """The pid of a process listening on `port`, if /proc shows one."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # local_address is HEX_IP:HEX_PORT; state 0A is LISTEN.
            if (
                len(fields) > 9
                and fields[3] == "0A"
                and int(fields[1].rsplit(":", 1)[1], 16) == port
            ):
                inodes.add(fields[9])
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for process in Path("/proc").iterdir():
        if not process.name.isdigit():
            continue
        try:
            for fd in (process / "fd").iterdir():
                if os.readlink(fd) in wanted:
                    return int(process.name)
        except OSError:  # gone, or another user's
            continue
    return None


def _command(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    command = " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    return command if len(command) <= 120 else command[:117] + "..."
