"""The govgate command line without a server: help everywhere, --version, keys, usage errors."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

from gateway.cli import build_parser
from tests.conftest import ROOT


def govgate(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
                                           "XDG_CONFIG_HOME": "/nonexistent", **env})


def parsers(parser: argparse.ArgumentParser, name: str = "govgate"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, child in action.choices.items():
                yield from parsers(child, f"{name} {sub}")


def test_every_command_option_and_positional_has_help_and_every_command_its_exit_codes() -> None:
    missing, silent = [], []
    for name, parser in parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                missing += [f"{name} {c.dest}" for c in action._choices_actions if not c.help]
            elif not action.help:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
        has_subcommands = any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)
        if name != "govgate" and not has_subcommands and "Exit codes" not in (parser.description or ""):
            silent.append(name)
    assert not missing, missing
    assert not silent, silent


def test_version() -> None:
    done = govgate("--version")
    assert done.returncode == 0 and done.stdout.strip() == "govgate 0.1.0"


def test_a_missing_token_is_a_usage_error() -> None:
    done = govgate("change", "list")
    assert done.returncode == 2
    assert done.stderr.strip().startswith("govgate change list: no token: pass --token")


def test_token_issue_never_creates_a_key(tmp_path: Path) -> None:
    done = govgate("token", "issue", "--subject", "ada", "--role", "admin", cwd=tmp_path)
    assert done.returncode == 2 and "there is no signing key at" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / ".govgate").exists()
    from registry.tokens import SigningKey

    key = SigningKey.load_or_create(tmp_path / "server" / "key.pem")
    config = tmp_path / "server" / "govgate.yaml"
    config.write_text(yaml.safe_dump({"tokens": {"signing_key_file": str(tmp_path / "server" / "key.pem")}}))
    for options in (["--config", str(config)], ["--key", str(tmp_path / "server" / "key.pem")]):
        issued = govgate("token", "issue", "--subject", "ada", "--role", "admin", *options, cwd=tmp_path)
        assert issued.returncode == 0, issued.stderr
        import jwt

        claims = jwt.decode(issued.stdout.strip(), key.private_key.public_key(), algorithms=["EdDSA"], audience="govgate-registry")
        assert claims["sub"] == "ada" and claims["roles"] == ["admin"]


def test_a_config_error_names_the_upstream(tmp_path: Path) -> None:
    config = tmp_path / "govgate.yaml"
    config.write_text("upstreams:\n  erp: {url: http://erp:8000}\n  wms: {url: 5}\n")
    done = govgate("serve", "--config", str(config), "--port", "1")
    assert done.returncode == 2
    assert done.stderr.strip() == (f"govgate: config {config} is invalid: Expected `str`, got `int` - at "
                                   "`upstreams.wms.url`")


def test_bundle_writes_what_propose_sends(tmp_path: Path) -> None:
    out = tmp_path / "bundled.json"
    done = govgate("bundle", "contracts/openapi/erp.sales-orders.yaml", "-o", str(out))
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert "components.yaml" not in text and "#/components/schemas/Money" in text
    listed = govgate("bundle", "contracts/openapi/erp.sales-orders.yaml")
    assert yaml.safe_load(listed.stdout)["info"]["title"]


def test_the_license_is_an_spdx_expression() -> None:
    """A TOML table is deprecated by setuptools and warns on every install."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"


def test_a_store_that_cannot_be_opened_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "govgate.yaml"
    for store, expected in (("postgresql://root@127.0.0.1:9/govgate", "PostgreSQL at 127.0.0.1:9, database govgate"),
                            ("mongo://db/x", "the store mongo:// is unknown")):
        config.write_text(yaml.safe_dump({"store": store}))
        done = govgate("serve", "--config", str(config), "--port", "1")
        assert done.returncode == 2 and expected in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
