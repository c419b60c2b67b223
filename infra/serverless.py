"""The functions serverless.yml defines: the one list of them.

`make dev` routes requests by it, `make invoke` lists and runs its entries,
the packager builds one artifact per entry and the tests walk it, so a new
function (`make function NAME=...`) is one entry in serverless.yml plus its
files, and nothing else keeps a second list.

Read with PyYAML: CloudFormation's short tags (`!Ref`, `!GetAtt`, `!Sub`)
are kept as opaque values, `${...}` variables as the strings they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "serverless.yml"
_HANDLER = re.compile(r"functions/(\w+)/handler\.handler")


@dataclass(frozen=True)
class Function:
    name: str  # as serverless.yml names it: threadEnsure
    package: str  # functions/<package>: thread_ensure
    routes: tuple[tuple[str, str], ...]  # (method, path) of each httpApi event
    queue: bool  # fed by an SQS event source

    @property
    def kebab(self) -> str:
        """thread-ensure: the name of its sample event and of its logs."""
        return self.package.replace("_", "-")

    @property
    def event(self) -> str:
        return f"events/{self.kebab}.json"

    def answers_to(self, asked: str) -> bool:
        """threadEnsure, thread-ensure and thread_ensure all name it."""
        return asked.lower() in {self.name.lower(), self.package, self.kebab}


class _Loader(yaml.SafeLoader):
    """serverless.yml's YAML: CloudFormation tags read as {"!Tag": value}."""


def _tagged(loader: _Loader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node)
    return {f"!{suffix}": value}


_Loader.add_multi_constructor("!", _tagged)


def read(template: Path = TEMPLATE) -> dict[str, Any]:
    loaded = yaml.load(template.read_text(), Loader=_Loader)  # noqa: S506 (a SafeLoader)
    return loaded if isinstance(loaded, dict) else {}


def functions(template: Path = TEMPLATE) -> list[Function]:
    """Every function in serverless.yml, in its order."""
    found = []
    for name, spec in (read(template).get("functions") or {}).items():
        match = _HANDLER.fullmatch(str((spec or {}).get("handler", "")))
        if match is None:
            continue
        events = spec.get("events") or []
        routes = tuple(
            (str(e["httpApi"]["method"]).upper(), str(e["httpApi"]["path"]))
            for e in events
            if isinstance(e, dict) and isinstance(e.get("httpApi"), dict)
        )
        queue = any(isinstance(e, dict) and "sqs" in e for e in events)
        found.append(Function(str(name), match.group(1), routes, queue))
    return found


def routes(template: Path = TEMPLATE) -> dict[tuple[str, str], str]:
    """(method, path) -> the package that serves it, as API Gateway routes."""
    return {route: f.package for f in functions(template) for route in f.routes}
