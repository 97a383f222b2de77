"""The demo's Redis keys are its own: a test's demo (another folder, or a configured prefix) never clears them."""

from __future__ import annotations

import os
from pathlib import Path

from gateway.config import GatewayConfig, StateConfig
from gateway.demo.events_demo import demo_prefix


def test_each_demo_folder_has_its_own_prefix_and_a_configured_one_wins(tmp_path: Path) -> None:
    here = os.getcwd()
    try:
        prefixes = []
        for folder in ("a", "b"):
            (tmp_path / folder).mkdir()
            os.chdir(tmp_path / folder)
            prefixes.append(demo_prefix(GatewayConfig()))
        assert prefixes[0] != prefixes[1] and all(p.startswith("govgate-demo:") for p in prefixes)
        assert demo_prefix(GatewayConfig(state=StateConfig(key_prefix="govgate-test:x:"))) == "govgate-test:x:"
    finally:
        os.chdir(here)
