"""Builds one Lambda artifact per function: its handler, `shared/` and the
runtime dependencies (no tests, dev tools or node_modules), for Lambda's
Linux (x86_64, manylinux) and Python 3.12, with bytecode compiled by a 3.12
interpreter so cold starts never compile (Lambda's file system is read-only).

    make package                  # -> .local/build/<function>.zip, then sls package
    make package DIRECT_DB=1      # + psycopg (runs this script with --with-direct-db)
    scripts/package_functions.py --function chat-message   # that artifact only

The functions are serverless.yml's (infra/serverless.py): a function added
there (`make function`) is built like the others.

Each artifact ships only the packages its function imports (on a request,
an error, or with tracing on; tests/deploy checks it). psycopg is left out
unless asked for: the functions reach the database through PostgREST on
AWS; a deployment that sets DATABASE_URL (a Supavisor pooler) needs it.

certifi's CAs also ship as an OpenSSL hashed directory (`ca-certificates/`),
which the functions' TLS context reads lazily (shared/tls.py): loading the
whole bundle file would cost every cold start about 50 ms.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

if __name__ == "__main__" and not __package__:
    # Run as a file, Python puts scripts/ first on the path, not the project.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infra.serverless import functions
from scripts.args import Parser, fail

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / ".local" / "build"
LIMIT_MB = 20
# boto3 and the libraries only it needs come with Lambda's Python runtime;
# shipping them would double the size. (jmespath stays: Powertools imports it.)
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer", "python-dateutil", "six", "urllib3"}
RUNTIME_PROVIDED_MODULES = ["boto3", "botocore", "s3transfer", "dateutil", "six", "urllib3"]
# The direct Postgres adapter's driver (DATABASE_URL): --with-direct-db.
DIRECT_DB = {"psycopg", "psycopg-binary"}
# Top-level packages a function never imports (by import name, as shipped),
# found by tests/deploy (a request, its errors, tracing on, SnapStart
# priming). cffi and pycparser build cryptography's bindings; at run time it
# needs only the compiled _cffi_backend. The worker serves no HTTP and
# verifies no token.
_BUILD_ONLY = {"cffi", "pycparser"}
# Every other function (an HTTP one, as `make function` makes them) ships
# everything but _BUILD_ONLY.
NOT_IMPORTED_BY: dict[str, set[str]] = {
    "bot_worker": _BUILD_ONLY
    | {"_cffi_backend", "cryptography", "fastapi", "starlette", "mangum"}
    | {"annotated_doc", "opentelemetry", "anyio"},  # FastAPI's and Starlette's own
}
# Distributions whose import name differs (their .dist-info goes too).
_IMPORT_NAME = {"pyjwt": "jwt", "opentelemetry_api": "opentelemetry"}
# HTTP/2 for httpx: every client we build speaks HTTP/1.1 (postgrest-py is
# given ours), so httpx never imports these.
NEVER_IMPORTED = {"h2", "hpack", "hyperframe"}
# Subpackages left out of every artifact. pydantic.v1, the Pydantic 1 API kept
# inside Pydantic 2: FastAPI imports it, when it builds each route, only to
# check that no model is a v1 one (and falls back to "none is" when it cannot
# be imported, as it will once Pydantic drops it). Nothing here uses v1
# models (FastAPI refuses them anyway), and the import costs every cold
# start 25-40 ms (benchmarks/README.md).
NEVER_IMPORTED_SUBPACKAGES = {"pydantic": {"v1"}}


def run(*args: str) -> None:
    subprocess.run(args, check=True, cwd=ROOT)


def python312() -> str | None:
    """A working 3.12 interpreter (a shim that cannot run does not count)."""
    candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")))
    candidates += [c for c in [shutil.which("python3.12")] if c]
    found = subprocess.run(["uv", "python", "find", "3.12", "--no-python-downloads"],
                           capture_output=True, text=True, check=False)  # fmt: skip
    if found.returncode == 0:
        candidates.insert(0, found.stdout.strip())
    for candidate in candidates:
        probe = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"],
                               capture_output=True, text=True, check=False)  # fmt: skip
        if probe.returncode == 0 and probe.stdout.strip() == "(3, 12)":
            return candidate
    return None


def dependencies(with_direct_db: bool) -> Path:
    deps = BUILD / "deps"
    shutil.rmtree(deps, ignore_errors=True)
    requirements = BUILD / "requirements.txt"
    run("uv", "export", "--no-dev", "--frozen", "--no-hashes", "--no-emit-project",
        "--quiet", "-o", str(requirements))  # fmt: skip
    lines = [
        line for line in requirements.read_text().splitlines()
        if line.split("==")[0].strip().lower()
        not in RUNTIME_PROVIDED | NEVER_IMPORTED | (set() if with_direct_db else DIRECT_DB)
    ]  # fmt: skip
    requirements.write_text("\n".join(lines) + "\n")
    run("uv", "pip", "install", "--quiet", "--target", str(deps), "--no-deps",
        "--python-platform", "x86_64-manylinux2014", "--python-version", "3.12",
        "--only-binary", ":all:", "-r", str(requirements))  # fmt: skip
    return deps


# Never imported at run time: type stubs and the libraries' own tests.
DEPENDENCY_NOISE = shutil.ignore_patterns("*.pyi", "py.typed", "*-stubs", "tests", "__pycache__")


def _top_level(entry: str) -> str:
    """`pydantic_core-2.1.dist-info` -> pydantic_core, `six.py` -> six."""
    name = entry.split("-")[0].split(".")[0]
    return _IMPORT_NAME.get(name, name)


_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----", re.S)
CA_DIRECTORY = "ca-certificates"


def write_ca_directory(bundle: Path, target: Path) -> int:
    """The bundle's certificates as an OpenSSL hashed directory (a file per
    CA named `<subject hash>.<n>`, as `openssl rehash` names them); returns
    how many."""
    shutil.rmtree(target, ignore_errors=True)
    certificates = _PEM.findall(bundle.read_bytes())
    with tempfile.TemporaryDirectory() as scratch:
        split = Path(scratch)
        for index, certificate in enumerate(certificates):
            (split / f"ca-{index:04}.pem").write_bytes(certificate + b"\n")
        run("openssl", "rehash", str(split))
        target.mkdir(parents=True)
        for link in sorted(split.iterdir()):
            if link.is_symlink():
                (target / link.name).write_bytes(link.resolve().read_bytes())
    return len(certificates)


def stage(name: str, deps: Path) -> Path:
    root = BUILD / name
    shutil.rmtree(root, ignore_errors=True)
    skip = NOT_IMPORTED_BY.get(name, _BUILD_ONLY)

    def not_imported(folder: str, entries: list[str]) -> set[str]:
        noise = set(DEPENDENCY_NOISE(folder, entries))
        if Path(folder) == deps:
            noise |= {e for e in entries if _top_level(e) in skip}
        elif Path(folder).parent == deps:
            noise |= NEVER_IMPORTED_SUBPACKAGES.get(Path(folder).name, set()) & set(entries)
        return noise

    shutil.copytree(deps, root, ignore=not_imported)
    shutil.copytree(BUILD / CA_DIRECTORY, root / CA_DIRECTORY)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "shared", root / "shared", ignore=ignore)
    (root / "functions").mkdir()
    shutil.copy(ROOT / "functions" / "__init__.py", root / "functions" / "__init__.py")
    shutil.copytree(ROOT / "functions" / name, root / "functions" / name, ignore=ignore)
    return root


def compile_bytecode(root: Path, interpreter: str | None) -> bool:
    if interpreter is None:
        print("warning: no python3.12 found; the artifact has no bytecode (slower cold starts)")
        return False
    run(interpreter, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
        str(root))  # fmt: skip
    return True


def unpacked_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def zip_dir(root: Path, target: Path) -> int:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                info = zipfile.ZipInfo(str(path.relative_to(root)), date_time=(2026, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes())
    return target.stat().st_size


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="package_functions", description=__doc__.split("\n\n")[0])
    parser.add_argument("--with-direct-db", action="store_true",
                        help="ship psycopg, for deployments that set DATABASE_URL")  # fmt: skip
    parser.add_argument("--function", action="append", default=[], metavar="NAME",
                        help="build only this function's artifact (repeatable; any name"
                        " serverless.yml answers to: chatMessage, chat-message)")  # fmt: skip
    args = parser.parse_args(argv)
    known = functions()
    chosen = [f for f in known if not args.function or any(f.answers_to(a) for a in args.function)]
    unknown = [a for a in args.function if not any(f.answers_to(a) for f in known)]
    if unknown:
        fail("package_functions", f"serverless.yml has no function {unknown[0]!r}"
             f" (it has: {', '.join(f.name for f in known)})")  # fmt: skip
    try:
        return build([f.package for f in chosen], args.with_direct_db)
    except subprocess.CalledProcessError as exc:
        command = " ".join(str(part) for part in exc.cmd)[:120]
        fail("package_functions", f"`{command}` failed (exit {exc.returncode}): see above")
    except FileNotFoundError as exc:
        fail("package_functions", f"{exc.filename} is missing: run `make bootstrap` first")


def build(names: list[str], with_direct_db: bool) -> int:
    """One artifact per function in `names` (functions/<name>)."""
    BUILD.mkdir(parents=True, exist_ok=True)
    say("locked runtime dependencies for Lambda (Linux x86_64, Python 3.12, manylinux wheels)")
    deps = dependencies(with_direct_db)
    say("certifi's CAs as a hashed directory")
    write_ca_directory(deps / "certifi" / "cacert.pem", BUILD / CA_DIRECTORY)
    interpreter = python312()
    too_big = []
    for name in names:
        say(f"{name}: staging, compiling bytecode, zipping")
        root = stage(name, deps)
        compiled = compile_bytecode(root, interpreter)
        unpacked = unpacked_size(root) / 1024 / 1024
        size = zip_dir(root, BUILD / f"{name}.zip")
        shutil.rmtree(root)
        mb = size / 1024 / 1024
        print(f"{name:14} {mb:6.2f} MB zipped, {unpacked:6.2f} MB unpacked"
              f"{'' if compiled else ' (no bytecode)'}")  # fmt: skip
        if mb > LIMIT_MB:
            too_big.append(name)
    if too_big:
        print(f"over {LIMIT_MB} MB: {', '.join(too_big)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
