"""Cold start, side by side in one run: a fresh Python 3.12 process runs the
packaged artifact (unzipped, as Lambda runs it) and serves one API Gateway
request, against the floor (bare FastAPI + Mangum, a pydantic body model,
no auth, no I/O), the same floor on our artifact's libraries with our init
settings, and the naive stack (FastAPI + Mangum + `supabase.create_client`),
runs alternating, the JWKS, RPCs and SSM answered by a loopback stand-in.
Also: the deployed secrets configuration (SSM names set: through the
Parameters and Secrets extension, and through boto3), the artifact of the
commit before (COLD_START_BASELINE, default the main this work started
from), what pausing the collector during init saves (the same artifact
without it), what the metrics path costs (the same artifact with
benchmarks/variants/no_metrics.py, which does nothing, as shared/metrics.py)
and what Powertools' Metrics would cost in place of our EMF lines (with
benchmarks/variants/powertools_metrics.py; COLD_START_ABLATIONS=0 skips
these three), and the first request after a SnapStart restore.

    COLD_START_RUNS=30 uv run python -m benchmarks.cold_start
    COLD_START_SKIP="naive;ours, SSM via boto3" COLD_START_CASES=thread-ensure,token ...
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.edge import canned_supabase
from benchmarks.report import Row
from scripts.package_functions import RUNTIME_PROVIDED_MODULES, python312
from tests.support.events import http_event
from tests.support.rpc_answers import MESSAGE, THREAD
from tests.support.tokens import SigningKeys

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / ".local" / "bench"
RUNS = int(os.environ.get("COLD_START_RUNS", "15"))
# The code before (issue 25: main at efd45ca, without metrics); empty to
# skip. (Before issue 22: 98c74ff; before issue 11's cold-start work: 33cbe4b.)
BASELINE = os.environ.get("COLD_START_BASELINE", "efd45ca")
ABLATIONS = os.environ.get("COLD_START_ABLATIONS", "1") == "1"
# Variants whose label starts with one of these (`;`-separated) are not
# run; cases by the first word of their name (`,`-separated).
SKIP = tuple(x.strip() for x in os.environ.get("COLD_START_SKIP", "").split(";") if x.strip())
CASES = tuple(x.strip() for x in os.environ.get("COLD_START_CASES", "").split(",") if x.strip())
# ours / the floor given the same libraries and init settings, per round:
# what our code adds. At most 1.30; the goal 1.20.
RATIO_LIMIT, RATIO_GOAL = 1.30, 1.20
# The configurations the ratio goal is for: secrets in the environment, and
# as deployed (the extension). boto3's path is kept for `sls invoke local`.
OURS_ENV, OURS_DEPLOYED = "ours, env secrets", "ours, SSM via the extension (deployed)"
BEFORE_ENV, BEFORE_DEPLOYED = "before, env secrets", "before, SSM via the extension (deployed)"
GOAL_VARIANTS = (OURS_ENV, OURS_DEPLOYED)
SAME_SETTINGS = (OURS_ENV, OURS_DEPLOYED, BEFORE_ENV, BEFORE_DEPLOYED)
# What a measure saves: ours without it, against ours (env secrets). (Issue
# 22 also measured ES256 through a subclass of ec.ECDSA that skipped its
# constructor: no saving outside the noise, so it went.)
NO_GC_PAUSE = "ours without the GC pause (saving)"
# What a choice would cost: ours with Powertools' Metrics in place of our EMF lines.
POWERTOOLS_METRICS = "ours with Powertools Metrics instead (cost)"
# What the metrics path costs: ours with a shared/metrics.py that does nothing.
NO_METRICS = "ours without metrics (saving)"
RESTORE_GOAL_MS = 5.0
RUNTIME = BENCH / "runtime"
WEBHOOK_SECRET = "a-long-enough-webhook-secret"

# bot-trigger: the utterance is found, its space has no bots (no SQS call).
BOTS = {"found": True, "speaker_is_bot": False, "space_id": "#lounge", "bots": []}
# bot-trigger then acknowledges the delivery (issue 23): answered, as PostgREST would.
ANSWERS = {"ensure_chat_thread": THREAD, "insert_chat_message": MESSAGE,
           "bots_for_utterance": BOTS, "ack_bot_delivery": True}  # fmt: skip

# Each script prints {"import": ms, "first": ms}: the in-process split.
CONTEXT = """
class Context:
    function_name = "bench"; memory_limit_in_mb = 512; aws_request_id = "bench"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:bench"
    def get_remaining_time_in_millis(self): return 30_000
"""

OURS = (
    """
import json, sys, time
start = time.perf_counter()
from functions.{module}.handler import handler
imported = time.perf_counter()
"""
    + CONTEXT
    + """
response = handler(json.loads(sys.argv[1]), Context())
done = time.perf_counter()
assert response["statusCode"] in (200, 201, 202), response
print("BENCH " + json.dumps({{"import": (imported - start) * 1000, "first": (done - imported) * 1000}}), flush=True)
"""
)

FLOOR = """
import json, sys, time
start = time.perf_counter()
from fastapi import FastAPI
from mangum import Mangum
from pydantic import BaseModel

class Body(BaseModel):
    other_mongo_id: str | None = None
    thread_id: str | None = None
    body: str | None = None

app = FastAPI()

@app.{method}("{path}")
async def route({params}) -> dict:
    return {{"ok": True}}

handler = Mangum(app, lifespan="off")
imported = time.perf_counter()
response = handler(json.loads(sys.argv[1]), None)
done = time.perf_counter()
assert response["statusCode"] == 200, response
print("BENCH " + json.dumps({{"import": (imported - start) * 1000, "first": (done - imported) * 1000}}), flush=True)
"""

# The floor's code on our artifact's libraries, with the process-wide
# settings ours has on Lambda: the collector paused during init
# (shared.init_gc; about 5 % of FastAPI's own import is collection), no
# pydantic plugin scan (serverless.yml's environment), no pydantic.v1
# (scripts/package_functions.py); ours / this isolates what our code adds.
# The floor itself is FastAPI and Mangum as pip installs them.
FLOOR_OURS_SETUP_LABEL = "floor, with ours' libraries and init settings"
FLOOR_AGAIN_LABEL = "floor again (A/A: the noise of this run)"
# What serverless.yml's environment sets for every function, besides secrets.
DEPLOYED_SETTINGS = {"PYDANTIC_DISABLE_PLUGINS": "__all__"}
FLOOR_OURS_SETUP = FLOOR.replace(
    "start = time.perf_counter()\n", "start = time.perf_counter()\nimport gc; gc.disable()\n", 1
)

NAIVE = """
import json, os, sys, time
start = time.perf_counter()
from fastapi import FastAPI, Header
from mangum import Mangum
from supabase import create_client
client = create_client(os.environ["SUPABASE_URL"], os.environ["SUPABASE_ANON_KEY"])
app = FastAPI()

@app.post("{path}")
def route(body: dict, authorization: str = Header("")):
    if authorization:
        client.postgrest.auth(authorization.split()[1])
    return client.rpc("{rpc}", {{"_other_mongo_id": "bob"}}).execute().data

handler = Mangum(app, lifespan="off")
imported = time.perf_counter()
response = handler(json.loads(sys.argv[1]), None)
done = time.perf_counter()
assert response["statusCode"] == 200, response
print("BENCH " + json.dumps({{"import": (imported - start) * 1000, "first": (done - imported) * 1000}}), flush=True)
"""

RESTORE = """
import json, sys, time
from functions.{module}.handler import handler
from shared import snapstart
event = json.loads(sys.argv[1])
snapstart.run_before_snapshot()
snapstart.run_after_restore()
start = time.perf_counter()
response = handler(event, None)
first = time.perf_counter()
handler(event, None)
second = time.perf_counter()
assert response["statusCode"] in (200, 201, 202), response
print("BENCH " + json.dumps({{"first": (first - start) * 1000, "second": (second - first) * 1000}}), flush=True)
"""


@dataclass
class Case:
    name: str
    module: str
    method: str
    path: str
    rpc: str | None  # the naive stack's call; None: no naive equivalent
    event: dict[str, Any] = field(default_factory=dict)


@dataclass
class Variant:
    label: str
    script: str
    path: list[Path]
    env: dict[str, str] = field(default_factory=dict)
    samples: list[dict[str, float]] = field(default_factory=list)
    base_env: dict[str, str] | None = None  # instead of the run's common environment

    def median(self, key: str) -> float:
        return statistics.median(s[key] for s in self.samples)


def _run(cmd: list[str], **kwargs: Any) -> None:
    subprocess.run(cmd, check=True, cwd=ROOT, **kwargs)


def interpreter() -> tuple[str, str]:
    """A clean Python 3.12 (a venv without packages: nothing from the host's
    site-packages), or this interpreter if there is no 3.12."""
    found = python312()
    if found is None:
        return sys.executable, f"Python {sys.version.split()[0]} (no 3.12 on this machine)"
    venv = BENCH / "py312"
    if not (venv / "bin" / "python").exists():
        _run(["uv", "venv", "-q", "--no-python-downloads", "--python", found, str(venv)])
    python = str(venv / "bin" / "python")
    version = subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"],
                             capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    return python, f"Python {version}"


def compile_for(python: str, folder: Path) -> None:
    _run([python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
          str(folder)], stdout=subprocess.DEVNULL)  # fmt: skip


def unpack(artifacts: Path, into: Path) -> None:
    shutil.rmtree(into, ignore_errors=True)
    for archive in artifacts.glob("*.zip"):
        zipfile.ZipFile(archive).extractall(into / archive.stem)


def build_ours() -> Path:
    _run(["uv", "run", "python", "scripts/package_functions.py"], stdout=subprocess.DEVNULL)
    unpack(ROOT / ".local" / "build", BENCH / "ours")
    return BENCH / "ours"


def build_variant(python: str, ours: Path, name: str) -> Path:
    """Per function, a copy of our artifact whose shared/metrics.py is
    benchmarks/variants/<name>.py (Powertools' Metrics, or no metrics at
    all), compiled as ours is: the same files on the same one-entry path,
    so the difference to ours is the metrics module and nothing else (an
    overlay package first on the path costs every import a lookup, which
    a first version measured as 20-40 ms against the variant)."""
    copies = BENCH / name.replace("_", "-")
    shutil.rmtree(copies, ignore_errors=True)
    variant = ROOT / "benchmarks" / "variants" / f"{name}.py"
    for artifact in ours.iterdir():
        copy = copies / artifact.name
        shutil.copytree(artifact, copy, symlinks=True)
        for stale in (copy / "shared" / "__pycache__").glob("metrics.*"):
            stale.unlink()
        shutil.copy(variant, copy / "shared" / "metrics.py")
        compile_for(python, copy / "shared")
    return copies


def build_baseline() -> Path | None:
    """The baseline commit's own packaging script, on its own lock file."""
    if not BASELINE:
        return None
    source = BENCH / "baseline-src"
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", BASELINE], cwd=ROOT, capture_output=True,
                             check=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    subprocess.run([sys.executable, "scripts/package_functions.py"], cwd=source, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    unpack(source / ".local" / "build", BENCH / "baseline")
    return BENCH / "baseline"


def _installed(python: str, name: str, packages: tuple[str, ...]) -> Path:
    """`packages` as pip installs them (at our lock's versions, their other
    dependencies resolved) for Lambda's platform and Python 3.12."""
    target = BENCH / name
    if not (target / "fastapi").exists():
        pins = [f"{p}=={metadata.version(p)}" for p in packages]
        _run(["uv", "pip", "install", "--quiet", "--target", str(target),
              "--python-platform", "x86_64-manylinux2014", "--python-version", "3.12",
              "--only-binary", ":all:", *pins])  # fmt: skip
        compile_for(python, target)
    return target


def build_floor(python: str) -> Path:
    """Bare FastAPI and Mangum, as pip installs them."""
    return _installed(python, "floor", ("fastapi", "mangum", "pydantic", "starlette"))


def build_naive(python: str) -> Path:
    """supabase-py, FastAPI and Mangum."""
    return _installed(python, "naive", ("supabase", "fastapi", "mangum"))


def build_runtime(python: str) -> Path:
    """What Lambda's Python runtime provides (boto3 and friends): for the
    SSM-through-boto3 configuration only."""
    target = RUNTIME
    if not (target / "boto3").exists():
        target.mkdir(parents=True, exist_ok=True)
        for module in RUNTIME_PROVIDED_MODULES:
            origin = Path(str(__import__(module).__file__))
            if origin.name == "__init__.py":
                shutil.copytree(origin.parent, target / module,
                                ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
            else:
                shutil.copy(origin, target / origin.name)
        compile_for(python, target)
    return target


def cases(keys: SigningKeys) -> list[Case]:
    bearer = {"authorization": f"Bearer {keys.token(uuid.uuid4(), mongo_id='amy')}"}
    from shared.session.cookies import encode

    cookie = "sb-127-auth-token=" + encode(
        {"access_token": keys.token(uuid.uuid4(), mongo_id="amy"), "refresh_token": "r"},
        "base64url",
    )
    webhook = json.loads(json.loads((ROOT / "events" / "bot-trigger.json").read_text())["body"])
    # A full row, as Supabase's generic webhooks send: the baseline requires
    # its fields, ours reads only the id (the trigger now sends only that).
    webhook["record"] |= {"type": "utterance", "owner_id": "@amy", "location_id": "#lounge",
                          "state": "complete", "content": {"text": "hi"}}  # fmt: skip
    return [
        Case("thread-ensure", "thread_ensure", "post", "/chat/threads/ensure",
             "ensure_chat_thread", http_event("POST", "/chat/threads/ensure",
                                              body={"other_mongo_id": "bob"}, headers=bearer)),
        Case("chat-message", "chat_message", "post", "/chat/messages", "insert_chat_message",
             http_event("POST", "/chat/messages", body={"thread_id": "amy__bob", "body": "hi"},
                        headers=bearer)),
        Case("token (valid cookie)", "token", "get", "/auth/token", None,
             http_event("GET", "/auth/token", headers={"cookie": cookie})),
        Case("bot-trigger", "bot_trigger", "post", "/webhooks/bot-trigger", "bots_for_utterance",
             http_event("POST", "/webhooks/bot-trigger", body=webhook,
                        headers={"x-webhook-secret": WEBHOOK_SECRET})),
    ]  # fmt: skip


SSM = {
    "SUPABASE_ANON_KEY": "/chat-functions/bench/supabase-anon-key",
    "SUPABASE_SERVICE_ROLE_KEY": "/chat-functions/bench/supabase-service-role-key",
    "WEBHOOK_SECRET": "/chat-functions/bench/webhook-secret",
}


def _sample(python: str, variant: Variant, event: dict[str, Any], env: dict[str, str]) -> None:
    """One fresh process. `response`: from spawning it to reading the first
    response (what a caller waits for on Lambda, whose process lives on);
    `wall`: until the process has exited (adds the interpreter's teardown)."""
    start = time.perf_counter()
    process = subprocess.Popen(
        [python, "-c", variant.script, json.dumps(event)],
        # Lambda's runtime directory (boto3) is on every function's path.
        env={
            **(env if variant.base_env is None else variant.base_env),
            **variant.env,
            "PYTHONPATH": os.pathsep.join(map(str, [*variant.path, RUNTIME])),
        },
        cwd=variant.path[0],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    split = None
    for line in process.stdout:
        if line.startswith("BENCH "):
            split = json.loads(line.removeprefix("BENCH "))
            break
    response = (time.perf_counter() - start) * 1000
    _, errors = process.communicate()
    wall = (time.perf_counter() - start) * 1000
    if process.returncode != 0 or split is None:
        raise RuntimeError(f"{variant.label}: {errors[-2000:]}")
    variant.samples.append({"wall": wall, "response": response, **split})


def run() -> list[Row]:
    python, version = interpreter()
    ours = build_ours()
    powertools_metrics = build_variant(python, ours, "powertools_metrics")
    no_metrics = build_variant(python, ours, "no_metrics")
    baseline = build_baseline()
    floor_libraries = build_floor(python)
    naive = build_naive(python)
    build_runtime(python)
    keys = SigningKeys()
    parameters = {SSM["SUPABASE_ANON_KEY"]: keys.anon_key(),
                  SSM["SUPABASE_SERVICE_ROLE_KEY"]: "service-role-key",
                  SSM["WEBHOOK_SECRET"]: WEBHOOK_SECRET}  # fmt: skip
    rows = [Row("cold start", "interpreter", version)]
    with canned_supabase(keys.jwks(), ANSWERS, parameters) as url:
        keys.serve_at(url)
        port = url.rsplit(":", 1)[1]
        env = {
            "PATH": "/usr/bin:/bin",
            "SUPABASE_URL": url,
            "ALLOWED_ORIGINS": "https://app.example.test",
            "LOG_LEVEL": "WARNING",
            "BOT_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/000000000000/bots",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "AWS_LAMBDA_FUNCTION_NAME": "bench",  # set by Lambda: see shared.init_gc
        }
        plain = {"SUPABASE_ANON_KEY": keys.anon_key(), "SUPABASE_SERVICE_ROLE_KEY": "k",
                 "WEBHOOK_SECRET": WEBHOOK_SECRET, "SECRETS_SOURCE": "env"}  # fmt: skip
        named = {f"{k}_SSM": v for k, v in SSM.items()}
        extension = {**named, "SECRETS_SOURCE": "extension", "AWS_SESSION_TOKEN": "session",
                     "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT": port}  # fmt: skip
        boto = {**named, "SECRETS_SOURCE": "ssm", "AWS_ENDPOINT_URL": url,
                "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}  # fmt: skip
        for case in cases(keys):
            if CASES and case.name.split(" ")[0] not in CASES:
                continue
            artifact = ours / case.module
            params = "body: Body" if case.method == "post" else ""
            floor = FLOOR.format(method=case.method, path=case.path, params=params)
            variants = [
                Variant("floor: FastAPI + Mangum", floor, [floor_libraries], plain),
                # The floor again: its ratio to the floor is this run's noise.
                Variant(FLOOR_AGAIN_LABEL, floor, [floor_libraries], plain),
                Variant(FLOOR_OURS_SETUP_LABEL, FLOOR_OURS_SETUP.format(method=case.method, path=case.path,
                        params=params), [artifact], {**plain, **DEPLOYED_SETTINGS}),
                Variant(OURS_ENV, OURS.format(module=case.module), [artifact],
                        {**plain, **DEPLOYED_SETTINGS}),
                Variant(OURS_DEPLOYED, OURS.format(module=case.module),
                        [artifact], {**extension, **DEPLOYED_SETTINGS}),
                Variant("ours, SSM via boto3", OURS.format(module=case.module),
                        [artifact], {**boto, **DEPLOYED_SETTINGS}),
            ]  # fmt: skip
            if case.rpc is not None:
                naive_script = NAIVE.format(path=case.path, rpc=case.rpc)
                variants.insert(1, Variant("naive: + supabase.create_client", naive_script,
                                           [naive], plain))  # fmt: skip
            if baseline is not None:
                variants += [
                    Variant(BEFORE_ENV, OURS.format(module=case.module),
                            [baseline / case.module], {**plain, **DEPLOYED_SETTINGS}),
                    Variant(BEFORE_DEPLOYED, OURS.format(module=case.module),
                            [baseline / case.module], {**extension, **DEPLOYED_SETTINGS}),
                ]  # fmt: skip
            if ABLATIONS:
                not_on_lambda = {k: v for k, v in env.items() if k != "AWS_LAMBDA_FUNCTION_NAME"}
                # shared.init_gc pauses the collector only on Lambda
                variants.append(Variant(NO_GC_PAUSE, OURS.format(module=case.module), [artifact],
                                        {**plain, **DEPLOYED_SETTINGS}, base_env=not_on_lambda))  # fmt: skip
                variants.append(Variant(POWERTOOLS_METRICS, OURS.format(module=case.module),
                                        [powertools_metrics / case.module],
                                        {**plain, **DEPLOYED_SETTINGS}))  # fmt: skip
                variants.append(Variant(NO_METRICS, OURS.format(module=case.module),
                                        [no_metrics / case.module],
                                        {**plain, **DEPLOYED_SETTINGS}))  # fmt: skip
            variants = [v for v in variants if not v.label.startswith(SKIP or ("\0",))]
            for variant in variants:  # warm the page cache
                _sample(python, variant, case.event, env)
                variant.samples.clear()
            # Each round in its own order, so no variant always runs right
            # after the same neighbour; seeded, so a run can be repeated.
            order = random.Random(f"{case.name} {RUNS}")
            for _ in range(RUNS):
                for variant in order.sample(variants, len(variants)):
                    _sample(python, variant, case.event, env)
            rows += _rows(case, variants)
            restore = Variant("restore", RESTORE.format(module=case.module), [artifact],
                              {**plain, **DEPLOYED_SETTINGS,
                               "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"})  # fmt: skip
            for _ in range(RUNS):
                _sample(python, restore, case.event, env)
            first, second = restore.median("first"), restore.median("second")
            rows += [
                Row(f"SnapStart {case.name}", "first request after restore, in-process",
                    f"{first:.2f} ms", f"<= {RESTORE_GOAL_MS:.0f} ms", first <= RESTORE_GOAL_MS),
                Row(f"SnapStart {case.name}", "second request (warm), in-process",
                    f"{second:.2f} ms"),
            ]  # fmt: skip
    return rows


def _per_round(variant: Variant, reference: Variant, *, ratio: bool = True) -> list[float]:
    """Per round, `variant` against `reference` (their ratio, or the
    difference in ms). A round runs every variant once, seconds apart; this
    machine has phases of running a third slower that last several seconds,
    which a ratio of medians across all rounds mixes in and a per-round
    figure mostly cancels."""
    return [
        mine["response"] / theirs["response"] if ratio else mine["response"] - theirs["response"]
        for mine, theirs in zip(variant.samples, reference.samples, strict=True)
    ]


def _paired(variant: Variant, reference: Variant) -> float:
    """The median of the per-round ratios to `reference`."""
    return statistics.median(_per_round(variant, reference))


def _median_interval(values: list[float]) -> str:
    """A distribution-free 95 % confidence interval of the median: the order
    statistics the binomial distribution (normal approximation) puts there."""
    ordered = sorted(values)
    n = len(ordered)
    half = 1.96 * math.sqrt(n) / 2
    low, high = max(0, math.floor(n / 2 - half)), min(n - 1, math.ceil(n / 2 + half))
    return f"{ordered[low]:.1f} to {ordered[high]:.1f} ms"


def _spread(values: list[float], digits: int = 2) -> str:
    """Median and interquartile range."""
    low, middle, high = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
    return f"{middle:.{digits}f} [IQR {low:.{digits}f}-{high:.{digits}f}]"


def _rows(case: Case, variants: list[Variant]) -> list[Row]:
    by_label = {v.label: v for v in variants}
    floor, same_settings = variants[0], by_label[FLOOR_OURS_SETUP_LABEL]
    floor_wall = floor.median("wall")
    rows = []
    for variant in variants:
        response, wall = variant.median("response"), variant.median("wall")
        split = f"import {variant.median('import'):.0f} + first {variant.median('first'):.0f}"
        goal, met, more = "", None, ""
        if variant.label in SAME_SETTINGS:
            ratios = _per_round(variant, same_settings)
            more = f"; x same-settings floor: {_spread(ratios)} per round"
            if variant.label in GOAL_VARIANTS:
                goal = f"<= {RATIO_LIMIT} (goal {RATIO_GOAL}) x same-settings floor"
                met = statistics.median(ratios) <= RATIO_LIMIT
        if variant.label in (NO_GC_PAUSE, NO_METRICS, POWERTOOLS_METRICS) and OURS_ENV in by_label:
            ours = by_label[OURS_ENV]
            # What ours pays for the metrics path is ours less ours without it.
            change = (_per_round(ours, variant, ratio=False) if variant.label == NO_METRICS
                      else _per_round(variant, ours, ratio=False))  # fmt: skip
            share = statistics.median(change) / ours.median("response") * 100
            verb = {NO_GC_PAUSE: "saves", NO_METRICS: "the metrics path costs"}.get(
                variant.label, "costs"
            )
            more = (f"; {verb} {_spread(change, 1)} ms per round ({share:.1f} % of ours;"
                    f" 95 % interval of the median {_median_interval(change)})")  # fmt: skip
        rows.append(
            Row(f"cold start {case.name}", variant.label,
                f"{response:.0f} ms to response ({split}); x floor: {_spread(_per_round(variant, floor))}"
                f" per round{more}; whole process {wall:.0f} ms = {wall / floor_wall:.2f} x", goal, met)
        )  # fmt: skip
    for before, after in ((BEFORE_ENV, OURS_ENV), (BEFORE_DEPLOYED, OURS_DEPLOYED)):
        if before in by_label and after in by_label:
            change = _per_round(by_label[after], by_label[before], ratio=False)
            share = statistics.median(change) / by_label[before].median("response") * 100
            rows.append(
                Row(f"cold start {case.name}", f"after - before, {after.split(', ', 1)[1]}",
                    f"{_spread(change, 1)} ms per round ({share:+.1f} % of before)"
                    f"; 95 % interval of the median {_median_interval(change)}")
            )  # fmt: skip
    return rows


if __name__ == "__main__":
    from benchmarks.report import print_table

    print_table(run())
