"""Lambda SnapStart: priming at init, and the snapshot's runtime hooks.

With SnapStart (`--param="snapStart=true"`), Lambda runs the init phase once
when a version is published, snapshots the process and restores that
snapshot for every new container; it sets AWS_LAMBDA_INITIALIZATION_TYPE to
`snap-start` during that init. The handlers then prime themselves (import
and build everything a request needs, serve one synthetic request that
stops before any I/O), so the first request after a restore costs what a
warm one does.

A snapshot is a copy of memory. So, before it is taken, every pooled
connection is closed (a socket restored into many containers would be
shared by all of them, or dead); after a restore, anything random is
re-seeded and time-derived state re-read. Nothing a user sent is ever in
it: the synthetic request carries no token, cookie or body of a user.

Hooks are registered with Lambda's `snapshot_restore_py` (shipped in the
managed Python runtime, not in our artifacts) and kept here too, so tests
and benchmarks run exactly the registered hooks without AWS.
"""

from __future__ import annotations

import functools
import os
import random
from collections.abc import Callable
from typing import Any

Hook = Callable[[], None]

_before_snapshot: list[Hook] = []
_after_restore: list[Hook] = []


def enabled() -> bool:
    """True while Lambda initialises a SnapStart version."""
    return os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start"


@functools.cache
def _runtime() -> Any:
    try:
        import snapshot_restore_py  # type: ignore[import-not-found]
    except ImportError:  # not on Lambda: tests run the hooks themselves
        return None
    return snapshot_restore_py


def register(*, before_snapshot: Hook | None = None, after_restore: Hook | None = None) -> None:
    runtime = _runtime()
    if before_snapshot is not None:
        _before_snapshot.append(before_snapshot)
        if runtime is not None:
            runtime.register_before_snapshot(before_snapshot)
    if after_restore is not None:
        _after_restore.append(after_restore)
        if runtime is not None:
            runtime.register_after_restore(after_restore)


def run_before_snapshot() -> None:
    """What Lambda does before the snapshot (reverse order of registration)."""
    for hook in reversed(_before_snapshot):
        hook()


def run_after_restore() -> None:
    """What Lambda does after a restore (order of registration)."""
    for hook in _after_restore:
        hook()


def _reseed() -> None:
    # `random` would otherwise replay the same sequence in every container
    # restored from one snapshot (uuid4 and `secrets` read os.urandom).
    random.seed()
    # The JWKS prefetch's TLS handshake at init drew on the ssl module's
    # OpenSSL generator: mix fresh OS entropy in, so restored copies never
    # share its state.
    import ssl

    ssl.RAND_add(os.urandom(48), 48.0)


register(after_restore=_reseed)
