"""Run the app under a production ASGI server, one worker process."""

from __future__ import annotations

import os

import msgspec

from gateway.app import CONFIG_ENV
from gateway.config import GatewayConfig


def serve(config: GatewayConfig) -> None:
    """Serve until interrupted. The worker builds the app from the config in the environment."""
    os.environ[CONFIG_ENV] = msgspec.json.encode(config).decode()
    if config.server == "uvicorn":
        import uvicorn

        # loop and http "auto": uvloop and httptools, both dependencies (docs/benchmarks.md)
        uvicorn.run("gateway.app:from_environment", factory=True, host=config.host, port=config.port,
                    log_level=config.log_level, access_log=False, backlog=2048, server_header=False)
    else:
        from granian import Granian
        from granian.constants import Interfaces
        from granian.log import LogLevels

        Granian("gateway.app:from_environment", factory=True, address=config.host, port=config.port,
                interface=Interfaces.ASGI, workers=1, log_level=LogLevels(config.log_level), backlog=2048).serve()
