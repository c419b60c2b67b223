"""`make function NAME=<kebab-name>`: a new function in the project's recipe,
working and tested as it is made; `make function-remove NAME=...` takes
back exactly what it made.

    make function NAME=hello-there        # POST /hello-there, handler, RPC, tests, deploy entry
    make function-remove NAME=hello-there

What it writes (from scripts/function_template/, `__snake__` and friends
replaced by the name's forms):
- functions/<snake>/handler.py: request model, the caller, one RPC call;
- infra/supabase/migrations/<now>_<snake>.sql: that RPC, SECURITY DEFINER
  with search_path = '', checking the caller, executable by authenticated only;
- events/<kebab>.json: a sample API Gateway event (`make invoke FN=<name>`);
- tests/unit/test_<snake>.py and tests/integration/test_<snake>.py;
- in serverless.yml, the function (its route, its own role, the same
  packaging, SnapStart and alias wiring as the others) and its role, which
  reads only its own SSM parameters; in tests/db/test_function_grants.py,
  who may run the new RPC.
make dev, make invoke and the packager read serverless.yml, so nothing else
needs to know (infra/serverless.py).
"""

from __future__ import annotations

import keyword
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

if __name__ == "__main__" and not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.args import Parser, fail

PROG = "make function"
TEMPLATES = Path(__file__).resolve().parent / "function_template"
NAME = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
MAX_NAME = 40  # Lambda's name is <service>-<stage>-<name>, 64 at most
GRANTS = Path("tests/db/test_function_grants.py")
GRANTS_ANCHOR = "    # Added by `make function` (and removed by `make function-remove`):\n"


@dataclass(frozen=True)
class Names:
    kebab: str  # hello-there: the route, the sample event, the logs

    @property
    def snake(self) -> str:  # hello_there: the package, the RPC, the artifact
        return self.kebab.replace("-", "_")

    @property
    def camel(self) -> str:  # helloThere: serverless.yml's function
        first, *rest = self.kebab.split("-")
        return first + "".join(part.capitalize() for part in rest)

    @property
    def pascal(self) -> str:  # HelloThere: its role, its models
        return "".join(part.capitalize() for part in self.kebab.split("-"))

    @property
    def route(self) -> str:
        return f"/{self.kebab}"

    def fill(self, template: str, version: str = "") -> str:
        for placeholder, value in (("__snake__", self.snake), ("__kebab__", self.kebab),
                                   ("__camel__", self.camel), ("__Pascal__", self.pascal),
                                   ("__version__", version)):  # fmt: skip
            template = template.replace(placeholder, value)
        return template


def template(name: str) -> str:
    return (TEMPLATES / name).read_text()


class Project:
    """The repository the function goes into (a copy, in the tests)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, relative: str | Path) -> Path:
        return self.root / relative

    def files(self, names: Names) -> dict[Path, str]:
        """Each file to create -> its template (the migration's is found separately)."""
        return {
            Path("functions") / names.snake / "__init__.py": "",
            Path("functions") / names.snake / "handler.py": template("handler.py.tmpl"),
            Path("events") / f"{names.kebab}.json": template("event.json.tmpl"),
            Path("tests/unit") / f"test_{names.snake}.py": template("test_unit.py.tmpl"),
            Path("tests/integration") / f"test_{names.snake}.py": template(
                "test_integration.py.tmpl"
            ),
        }

    def migrations(self) -> list[Path]:
        return sorted(self.path("infra/supabase/migrations").glob("*.sql"))

    def migration_of(self, names: Names) -> Path | None:
        marker = f"(made by `make function NAME={names.kebab}`)"
        return next((m for m in self.migrations() if marker in m.read_text()), None)

    def next_version(self) -> str:
        """Now (UTC), or just after the newest migration if that is later."""
        now = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        versions = [m.name.partition("_")[0] for m in self.migrations()]
        newest = max((v for v in versions if v.isdigit()), default="0")
        return now if now > newest else str(int(newest) + 1)

    def problem(self, names: Names) -> str | None:
        """Why the name cannot be used, in one sentence; None if it can."""
        from infra.serverless import functions, read

        kebab = names.kebab
        if not NAME.fullmatch(kebab) or len(kebab) > MAX_NAME:
            return (f"{kebab!r} is not a name: use lowercase letters, digits and single"
                    f" hyphens, starting with a letter, at most {MAX_NAME} characters,"
                    " e.g. NAME=send-invite")  # fmt: skip
        if keyword.iskeyword(names.snake):
            return f"{kebab!r} would be the package functions.{names.snake}: a Python keyword"
        template_file = self.path("serverless.yml")
        for function in functions(template_file):
            if function.package == names.snake or function.name.lower() == names.camel.lower():
                return f"{kebab!r} is taken: serverless.yml has the function {function.name}"
            for method, path in function.routes:
                if path.rstrip("/") == names.route:
                    return f"{kebab!r} is taken: {function.name} serves {method} {path}"
        resources = (read(template_file).get("resources") or {}).get("Resources") or {}
        if f"{names.pascal}Role" in resources:
            return f"{kebab!r} is taken: serverless.yml has the resource {names.pascal}Role"
        for relative in [*self.files(names), Path("functions") / names.snake]:
            if self.path(relative).exists():
                return f"{kebab!r} is taken: {relative} exists"
        sql = re.compile(rf"\b(public|private)\.{names.snake}\b", re.IGNORECASE)
        for source in [*self.migrations(), *sorted(self.path("infra/local").glob("*.sql"))]:
            match = sql.search(source.read_text())
            if match:
                where = source.relative_to(self.root)
                return f"{kebab!r} is taken: {where} defines or uses {match.group(0)}"
        return None


def _section_end(lines: list[str], start: int, indent: int) -> int:
    """The index after the block that begins at `start`: the next line
    indented `indent` or less (comments and blank lines belong to no block),
    with the blank lines before it left outside."""
    end = start + 1
    while end < len(lines):
        line = lines[end]
        code = line.strip() and not line.lstrip().startswith("#")
        if code and len(line) - len(line.lstrip()) <= indent:
            break
        end += 1
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    return end


def _find(lines: list[str], text: str, after: int = 0) -> int:
    return next((i for i in range(after, len(lines)) if lines[i].rstrip() == text), -1)


def add_to_serverless(text: str, names: Names) -> str:
    """The function at the end of `functions:`, its role at the end of
    `resources: Resources:`, each after a blank line."""
    lines = text.split("\n")
    functions_at = _find(lines, "functions:")
    resources_at = _find(lines, "  Resources:", _find(lines, "resources:"))
    if functions_at < 0 or resources_at < 0:
        fail(PROG, "serverless.yml has no `functions:` or no `resources: Resources:` section")
    role = names.fill(template("serverless-role.yml.tmpl")).rstrip("\n").split("\n")
    end = _section_end(lines, resources_at, 2)
    lines[end:end] = ["", *role]
    function = names.fill(template("serverless-function.yml.tmpl")).rstrip("\n").split("\n")
    end = _section_end(lines, functions_at, 0)
    lines[end:end] = ["", *function]
    return "\n".join(lines)


def remove_from_serverless(text: str, names: Names) -> str:
    lines = text.split("\n")
    for key, section, indent in ((f"  {names.camel}:", "functions:", 2),
                                 (f"    {names.pascal}Role:", "  Resources:", 4)):  # fmt: skip
        start = _find(lines, key, max(_find(lines, section), 0))
        if start < 0:
            continue
        end = _section_end(lines, start, indent)
        if start > 0 and not lines[start - 1].strip():
            start -= 1  # the blank line that was added before it
        del lines[start:end]
    return "\n".join(lines)


def grant_line(names: Names) -> str:
    return f'    "{names.snake}(text)": AUTHENTICATED,  # make function NAME={names.kebab}\n'


def add(root: Path, kebab: str) -> list[str]:
    project = Project(root)
    names = Names(kebab)
    problem = project.problem(names)
    if problem:
        fail(PROG, problem)
    grants = project.path(GRANTS).read_text()
    if GRANTS_ANCHOR not in grants:
        fail(PROG, f"{GRANTS} has lost its line {GRANTS_ANCHOR.strip()!r}:"
             " put it back at the end of EXPECTED")  # fmt: skip
    version = project.next_version()
    written = []
    for relative, content in project.files(names).items():
        target = project.path(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(names.fill(content, version))
        written.append(str(relative))
    migration = Path("infra/supabase/migrations") / f"{version}_{names.snake}.sql"
    project.path(migration).write_text(names.fill(template("migration.sql.tmpl"), version))
    written.append(str(migration))
    serverless = project.path("serverless.yml")
    serverless.write_text(add_to_serverless(serverless.read_text(), names))
    granted = grants.replace(GRANTS_ANCHOR, GRANTS_ANCHOR + grant_line(names))
    project.path(GRANTS).write_text(granted)
    # The project's formatter has the last word on the generated Python.
    python = [str(project.path(p)) for p in written if p.endswith(".py")]
    ruff = [sys.executable, "-m", "ruff", "format", "--quiet"]
    subprocess.run([*ruff, *python], cwd=root, check=True)
    return [*written, "serverless.yml", str(GRANTS)]


def remove(root: Path, kebab: str) -> list[str]:
    project = Project(root)
    names = Names(kebab)
    if not NAME.fullmatch(kebab):
        fail(PROG, f"{kebab!r} is not a name `make function` makes")
    removed = []
    for relative in project.files(names):
        if project.path(relative).exists():
            project.path(relative).unlink()
            removed.append(str(relative))
    package = project.path(Path("functions") / names.snake)
    if package.exists():
        shutil.rmtree(package)
        removed.append(f"functions/{names.snake}/")
    migration = project.migration_of(names)
    if migration is not None:
        migration.unlink()
        removed.append(str(migration.relative_to(root)))
    serverless = project.path("serverless.yml")
    before = serverless.read_text()
    after = remove_from_serverless(before, names)
    if after != before:
        serverless.write_text(after)
        removed.append("serverless.yml: its function and role")
    grants = project.path(GRANTS)
    text = grants.read_text()
    if grant_line(names) in text:
        grants.write_text(text.replace(grant_line(names), ""))
        removed.append(f"{GRANTS}: its grant")
    if not removed:
        fail(PROG, f"nothing of {kebab!r} to remove (no functions/{names.snake},"
             " no serverless.yml entry)")  # fmt: skip
    return removed


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["add", "remove"])
    parser.add_argument("name", help="kebab-case, e.g. send-invite")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args(argv)
    if not args.name:
        fail(PROG, "give the function a name: make function NAME=send-invite")
    names, root = Names(args.name), args.root.resolve()
    if args.action == "remove":
        removed = remove(root, args.name)
        print(f"removed {args.name}:\n  " + "\n  ".join(removed))
        if any(r.startswith("infra/supabase/migrations/") for r in removed):
            print("Its migration is gone from the files, not from a database it was applied to:"
                  " locally `make dev-reset`; on a project it was pushed to, add a migration that"
                  f" drops public.{names.snake}(text).")  # fmt: skip
        return 0
    written = add(root, args.name)
    print(f"""made {args.name}: POST {names.route} ({names.camel} in serverless.yml)
  {chr(10).join("  " + w for w in written).strip()}
Next:
  .venv/bin/pytest tests/unit/test_{names.snake}.py tests/integration/test_{names.snake}.py
  make dev serves it at POST http://127.0.0.1:8000{names.route} (a running make dev picks it up
    and applies its migration); make invoke FN={names.camel} runs its sample event
  docs/adding-a-function.md: from this greeting to your function
  make function-remove NAME={args.name} undoes all of it""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
