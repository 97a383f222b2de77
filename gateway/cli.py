"""The `govgate` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import msgspec

from gateway import config as gateway_config


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = argparse.ArgumentParser(prog="govgate", description="API governance gateway and contract registry")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway and the registry API")
    serve.add_argument("--demo", action="store_true",
                       help="start a sample ERP upstream and publish the bundled retail contracts")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8080)")
    serve.add_argument("--config", type=Path, help="YAML configuration file (see docs/configuration.md)")
    serve.add_argument("--server", choices=["granian", "uvicorn"], help="ASGI server (default granian)")
    args = parser.parse_args(argv)
    return _serve(args)


def _serve(args: argparse.Namespace) -> int:
    config = gateway_config.load(args.config)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port), ("server", args.server)) if v}
    config = msgspec.structs.replace(config, **overrides)
    process = None
    if args.demo:
        from gateway.demo.launch import prepare

        config, process = prepare(config)
    from gateway.server import serve

    try:
        serve(config)
    except KeyboardInterrupt:
        pass
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
