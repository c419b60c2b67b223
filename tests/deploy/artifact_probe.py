"""Run inside an unpacked artifact (Python 3.12, `-I`): imports the handler,
serves the given events, and prints the artifact's top-level packages that
no module came from. Not a test module: tests/deploy runs it by path.

    python3.12 -I artifact_probe.py <artifact dir> <function> <events.json>
"""

import gc
import json
import os
import sys
from pathlib import Path

artifact, function, events_file = Path(sys.argv[1]).resolve(), sys.argv[2], sys.argv[3]
sys.path.insert(0, str(artifact))
# What Lambda's runtime provides (boto3 and friends), after the artifact.
sys.path.append(os.environ["PROBE_RUNTIME"])


class Context:
    function_name = function
    memory_limit_in_mb = 512
    invoked_function_arn = f"arn:aws:lambda:eu-west-1:123456789012:function:{function}"
    aws_request_id = "probe"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


module = __import__(f"functions.{function}.handler", fromlist=["handler"])
statuses = []
for event in json.loads(Path(events_file).read_text()):
    response = module.handler(event, Context())
    statuses.append(response.get("statusCode", "batch"))


def top_level(path: Path) -> str | None:
    if path.name.endswith((".dist-info", ".libs")) or path.name in ("__pycache__", "bin"):
        return None
    if path.is_dir():
        # Data such as ca-certificates/ is not a package (its name cannot be imported).
        return path.name if path.name.isidentifier() else None
    if path.suffix in (".py", ".so"):
        return path.name.split(".")[0]
    return None


shipped = {name for p in artifact.iterdir() if (name := top_level(p))}
used = set()
for loaded in list(sys.modules.values()):
    origin = getattr(loaded, "__file__", None) or ""
    if origin.startswith(str(artifact) + "/"):
        used.add(Path(origin).relative_to(artifact).parts[0].split(".")[0])
tls = sys.modules["shared.container"]._tls_context.peek()
# CAs parsed up front: none when the shipped hashed directory is read lazily.
cas_loaded = tls.cert_store_stats()["x509_ca"] if tls is not None else None
report = {
    "statuses": statuses,
    "unused": sorted(shipped - used),
    "cas_loaded": cas_loaded,
    # The collector is paused during init (shared.init_gc): it must be back on.
    "gc_enabled": gc.isenabled(),
    "gc_frozen": gc.get_freeze_count(),
    # Tracing's modules are init's too: frozen with the rest, not traversed by
    # every later full collection (frozen objects are not in get_objects()).
    "tracing_frozen": id(vars(sys.modules["aws_lambda_powertools.tracing.tracer"]))
    not in {id(o) for o in gc.get_objects()},
}
print(json.dumps(report))  # noqa: T201
