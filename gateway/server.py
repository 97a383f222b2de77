"""Run the app under a production ASGI server, one worker process."""

from __future__ import annotations

import os
import threading
import time
import urllib.request
from collections.abc import Callable

import msgspec

from gateway.app import CONFIG_ENV
from gateway.config import GatewayConfig


def serve(config: GatewayConfig, *, on_listening: Callable[[], None] | None = None) -> None:
    """Serve until interrupted. The worker builds the app from the config in the environment.

    `on_listening` runs (in a thread) once /healthz answers on the configured port, not before.
    """
    os.environ[CONFIG_ENV] = msgspec.json.encode(config).decode()
    if on_listening is not None:
        host = "127.0.0.1" if config.host in ("0.0.0.0", "::") else config.host
        threading.Thread(target=_when_listening, args=(f"http://{host}:{config.port}/healthz", on_listening),
                         daemon=True).start()
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


def _when_listening(url: str, then: Callable[[], None]) -> None:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - our own address
                break
        except OSError:
            time.sleep(0.1)
    then()
