"""The Cinder PS driver's whole lifecycle, over real SSH (paramiko, a channel per command).

The driver's command sequences and parsing rules are written once, in tests/cli/test_cinder_driver.py
(``PSDriver``), where they run over a sans-IO session and over ``array-sim cli`` processes. This module
loads that file by its path (test modules cannot import each other under ``--import-mode=importlib``)
and runs its lifecycle test with a third transport: the channel of ``conftest.cinder_command``,
whose replies are what paramiko received, split into lines, framing and prompt included. The
administrator's own commands (``Backend.cli``) go through the control socket of the running server.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from firmware_model.control import RemoteSession


def _driver_module() -> ModuleType:
    path = Path(__file__).parents[1] / "cli" / "test_cinder_driver.py"
    spec = importlib.util.spec_from_file_location("cinder_driver_emulation", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pytestmark = pytest.mark.slow  # a server of its own and some forty channels: a few seconds


@pytest.fixture(scope="module")
def driver_module() -> ModuleType:
    return _driver_module()


def test_full_driver_lifecycle_over_ssh(
    own_serve: Any, driver_module: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve = own_serve  # the lifecycle counts the pool's volumes: a group of its own
    account = serve.account()
    client = serve.connect(account, "Pass-1234")

    class SshBackend(driver_module.Backend):  # type: ignore[name-defined,misc]
        def open(self) -> Any:
            raise AssertionError("the group is served: nothing opens it in this process")

        def close(self) -> None:
            pass

        def transport(self, command: str) -> list[str]:
            lines = serve.cinder_command(client, command)
            assert lines[0] == "" and lines[-1] == serve.PROMPT, lines  # no echo, the prompt last
            self.raw.append(lines[1:-1])
            return lines

        def cli(self, command: str, account: str = "inspector") -> list[str]:
            remote = RemoteSession(serve.directory, account, interactive=False)
            try:
                for setting in ("confirmation", "formatoutput"):
                    assert remote.execute(f"cli-settings {setting} off") == []
                lines = remote.execute(command)
            finally:
                remote.close()
            assert not any(line.startswith("% Error") for line in lines), (command, lines)
            return lines

    # serve --portal 127.0.0.1:PORT made 127.0.0.1 the group IP: what grpparams show tells the driver
    monkeypatch.setattr(driver_module, "GROUP_IP", "127.0.0.1")
    try:
        driver_module.test_full_driver_lifecycle_in_order(SshBackend("ssh", serve.directory, None))
    finally:
        client.close()
