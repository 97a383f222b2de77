"""Load a contract catalog (contracts/catalog.yaml) into the registry and publish it."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

from registry import documents
from registry.model import NewContract
from registry.service import Registry


def bundled_catalog() -> Path:
    """The catalog of the retail contracts shipped with govgate."""
    return Path(str(files("contracts").joinpath("catalog.yaml")))


def read_catalog(path: Path) -> list[dict[str, Any]]:
    """The catalog's entries, each with its bundled document under `loaded`."""
    catalog = documents.parse(path.read_bytes(), source=str(path))
    entries = []
    for entry in catalog.get("contracts", []):
        document_path = path.parent / entry["document"]
        entries.append({**entry, "loaded": documents.load_file(document_path)})
    return entries


async def publish_catalog(registry: Registry, path: Path, *, actor: str = "demo") -> list[str]:
    """Register every contract of a catalog and publish its version; idempotent. Returns name@version."""
    published = []
    for entry in read_catalog(path):
        new = NewContract(name=entry["name"], kind=entry["kind"], owner=entry["owner"],
                          description=entry.get("description", ""), upstream=entry.get("upstream"))
        await registry.create_contract(new, actor=actor)
        # the bundled catalog is the starting point, not a change: it is published without review
        version, _, _ = await registry.add_version(new.name, entry["loaded"], version=entry.get("version"), actor=actor,
                                                   review=False)
        await registry.publish(new.name, version.version, actor=actor)
        published.append(f"{new.name}@{version.version}")
    return published
