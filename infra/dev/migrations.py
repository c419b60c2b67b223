"""New migrations while make dev runs, as `supabase start` users expect:
a new file in infra/supabase/migrations/ is applied as soon as it is saved
(as `postgres`, in its own transaction, recorded in the ledger, as at
start-up and as `supabase db push` does). A migration that was applied is
never run again: edited or removed afterwards, make dev says that the
database no longer matches it and that `make dev-reset` rebuilds it from
the files (its data is lost). A failing new migration is reported with its
file and line and left unapplied; saving it again retries.

What was applied is remembered per data folder (applied-migrations.json,
a hash per file), so an edit made while make dev was stopped is named at
the next start too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from infra.local.schema import MigrationFailed, applied_versions, apply_migrations, migrations

RESET = "`make dev-reset` (with the same DEV_DATA_DIR) then `make dev` rebuilds it from the files, losing its data"


def hashes() -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in migrations()}


class MigrationWatch:
    def __init__(self, dsn: str, data: Path, say: Callable[[str], None]) -> None:
        self.dsn = dsn
        self.record = data / "applied-migrations.json"
        self.say = say
        self.seen: dict[str, str] = {}

    def _recorded(self) -> dict[str, str]:
        try:
            loaded = json.loads(self.record.read_text())
        except (OSError, ValueError):
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def start(self, applied_now: list[str]) -> None:
        """After start-up's own apply: names the migrations edited since they
        were applied, and remembers what is applied."""
        self.seen = hashes()
        recorded = self._recorded()
        applied = applied_versions(self.dsn)
        for name, digest in sorted(self.seen.items()):
            if name in recorded and name not in applied_now and recorded[name] != digest:
                self.say(f"infra/supabase/migrations/{name} changed after it was applied: make dev"
                         f" does not run it again; {RESET}")  # fmt: skip
        self._remember({n: d for n, d in self.seen.items() if n.partition("_")[0] in applied})

    def _remember(self, applied: dict[str, str]) -> None:
        """Keeps the hash each file had when it was applied (the first one seen)."""
        self.record.write_text(
            json.dumps({**applied, **self._recorded()}, indent=1, sort_keys=True)
        )

    def check(self) -> None:
        """Called every half second: applies new files, names changed ones."""
        now = hashes()
        if now == self.seen:
            return
        applied = applied_versions(self.dsn)
        for name in sorted(self.seen.keys() | now.keys()):
            if self.seen.get(name) == now.get(name) or name.partition("_")[0] not in applied:
                continue
            what = ("was removed after it was applied: what it did stays in this database"
                    if name not in now else "changed after it was applied: make dev does not run"
                    " it again")  # fmt: skip
            self.say(f"infra/supabase/migrations/{name} {what}; {RESET}")
        self.seen = now
        try:
            done = apply_migrations(self.dsn)
        except MigrationFailed as exc:
            self.say(f"\033[1;31mmigration failed, nothing of it applied: {exc}\033[0m"
                     " (fix it and save: make dev tries again)")  # fmt: skip
            return
        if done:
            self.say(f"applied {len(done)} new migration(s): {', '.join(done)}")
            self._remember({n: now[n] for n in done})
