"""Run `govgate` as if installed with plain `pip install REQUIREMENT`: nothing outside its dependencies imports.

The test environment holds the test extras (pytest, httpx, openapi-core, …). This module computes the
closure of distributions that `pip install REQUIREMENT` would bring (from the installed metadata), hides
every top-level module that only other distributions provide, and runs the CLI. A command that needs
a test-only package then fails exactly as it would after a plain install: ModuleNotFoundError.

    python tests/e2e/plain_install.py 'govgate[verify]' lint api/openapi.yaml
"""

from __future__ import annotations

import importlib.abc
import importlib.metadata
import re
import sys
from collections.abc import Sequence
from typing import Any


def closure(requirement: str) -> set[str]:
    """Normalised names of the distributions `pip install requirement` installs."""
    from packaging.requirements import Requirement

    found: set[str] = set()
    pending = [Requirement(requirement)]
    while pending:
        current = pending.pop()
        name = _normal(current.name)
        key = f"{name}[{','.join(sorted(current.extras))}]"
        if key in found:
            continue
        found.update({key, name})
        for text in importlib.metadata.requires(current.name) or []:
            needed = Requirement(text)
            environments = [{"extra": extra} for extra in current.extras] or [{"extra": ""}]
            if needed.marker is None or any(needed.marker.evaluate(env) for env in environments):
                pending.append(needed)
    return {n for n in found if "[" not in n}


def hidden_modules(allowed: set[str]) -> set[str]:
    """Top-level modules that only distributions outside `allowed` provide."""
    return {module for module, dists in importlib.metadata.packages_distributions().items()
            if not any(_normal(d) in allowed for d in dists)}


class _Hide(importlib.abc.MetaPathFinder):
    def __init__(self, hidden: set[str]) -> None:
        self.hidden = hidden

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name.partition(".")[0] in self.hidden:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main(argv: Sequence[str]) -> int:
    requirement, *args = argv
    sys.meta_path.insert(0, _Hide(hidden_modules(closure(requirement))))
    from gateway.cli import main as govgate

    return govgate(list(args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
