"""``org.kernel.TCMUService1`` (targets/tcmu/dbus_service.py): pure replies, then a real bus and targetcli's client.

The pure tests build method calls with jeepney and check each reply. The bus tests start a private
``dbus-daemon`` whose policy is the system bus's default (nobody owns a name unless a policy file lets
them) plus ``scripts/lab/org.kernel.TCMUService1.conf``, run ``serve_bus`` in a subprocess of its own,
and ask it the way targetcli-fb's ``ui_backstore._user_backstores`` does: the system python's Gio
(``Gio.DBusProxy`` on the ObjectManager, then on each handler), with ``DBUS_SYSTEM_BUS_ADDRESS``
pointing at the private bus. ``targetcli ls`` itself runs in the LIO guest (tests/lio/test_lio_guest.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from jeepney import DBusAddress, MessageType, new_method_call, new_signal

from targets.tcmu.dbus_service import BUS_NAME, ROOT_PATH, reply_to

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "scripts" / "lab" / "org.kernel.TCMUService1.conf"
HANDLER = "arraysim"
CHILD = f"{ROOT_PATH}/{HANDLER}"


def call(path: str, interface: str | None, member: str, signature: str | None = None, body: tuple = ()):  # noqa: ANN201
    message = new_method_call(DBusAddress(path, BUS_NAME, interface), member, signature, body)
    message.header.serial = 7  # what the bus would have given it
    return reply_to(message, HANDLER)


# ------------------------------------------------------------------ pure replies


def test_the_object_manager_lists_one_handler_with_its_config_description() -> None:
    reply = call(ROOT_PATH, "org.freedesktop.DBus.ObjectManager", "GetManagedObjects")
    assert reply.header.message_type is MessageType.method_return
    (objects,) = reply.body
    assert list(objects) == [CHILD]
    signature, description = objects[CHILD]["org.kernel.TCMUService1"]["ConfigDesc"]
    assert signature == "s" and description.startswith("arraysim/")


def test_properties_of_the_handler_object() -> None:
    (everything,) = call(CHILD, "org.freedesktop.DBus.Properties", "GetAll", "s", ("org.kernel.TCMUService1",)).body
    assert set(everything) == {"ConfigDesc"}
    assert call(ROOT_PATH, "org.freedesktop.DBus.Properties", "GetAll", "s", ("org.kernel.TCMUService1",)).body == ({},)
    one = call(CHILD, "org.freedesktop.DBus.Properties", "Get", "ss", ("org.kernel.TCMUService1", "ConfigDesc"))
    assert one.body == (everything["ConfigDesc"],)
    missing = call(CHILD, "org.freedesktop.DBus.Properties", "Get", "ss", ("org.kernel.TCMUService1", "Nope"))
    assert missing.header.message_type is MessageType.error


def test_targetcli_cannot_create_or_change_our_storage_objects() -> None:
    ok, why = call(CHILD, "org.kernel.TCMUService1", "CheckConfig", "s", ("arraysim/anything",)).body
    assert ok is False and "Group Manager CLI" in why
    code, why = call(CHILD, "org.kernel.TCMUService1", "ChangeMedium", "sts", ("so", 1 << 30, "arraysim/x")).body
    assert code < 0 and "volume select V size" in why
    no_interface = call(CHILD, None, "CheckConfig", "s", ("arraysim/x",))  # the interface is optional in a call
    assert no_interface.header.message_type is MessageType.method_return and no_interface.body[0] is False


@pytest.mark.parametrize(
    ("path", "interface", "member", "signature", "body"),
    [
        (CHILD, "org.kernel.TCMUService1", "Delete", None, ()),
        (CHILD, "org.kernel.TCMUService1", "CheckConfig", "i", (1,)),  # the wrong argument type
        (ROOT_PATH, "org.kernel.TCMUService1", "CheckConfig", "s", ("arraysim/x",)),  # not on the root
        ("/org/kernel/TCMUService1/other", "org.kernel.TCMUService1", "CheckConfig", "s", ("x",)),
        ("/", "org.freedesktop.DBus.ObjectManager", "GetManagedObjects", None, ()),
    ],
)
def test_anything_else_is_answered_with_an_error(path: str, interface: str, member: str, signature: str | None,
                                                 body: tuple) -> None:  # fmt: skip
    reply = call(path, interface, member, signature, body)
    assert reply.header.message_type is MessageType.error
    assert reply.header.fields[4].startswith("org.freedesktop.DBus.Error.Unknown")  # 4: ERROR_NAME


def test_introspection_and_ping_and_no_reply_to_a_signal() -> None:
    (xml,) = call(ROOT_PATH, "org.freedesktop.DBus.Introspectable", "Introspect").body
    assert '<node name="arraysim"/>' in xml and "GetManagedObjects" in xml
    (xml,) = call(CHILD, "org.freedesktop.DBus.Introspectable", "Introspect").body
    assert "CheckConfig" in xml and "ConfigDesc" in xml
    assert call(CHILD, "org.freedesktop.DBus.Peer", "Ping").body == ()
    signal = new_signal(DBusAddress(CHILD, interface="org.kernel.TCMUService1"), "Changed")
    assert reply_to(signal, HANDLER) is None


# ------------------------------------------------------------------ a real bus

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
  </policy>
  {own}
  <include>{policy}</include>
</busconfig>
"""

#: targetcli-fb's ``_user_backstores`` and ``ui_command_create``'s CheckConfig, in the system python.
TARGETCLI_CLIENT = """
from gi.repository import Gio
bus = Gio.bus_get_sync(Gio.BusType.SYSTEM, None)
manager = Gio.DBusProxy.new_sync(bus, Gio.DBusProxyFlags.NONE, None, 'org.kernel.TCMUService1',
                                 '/org/kernel/TCMUService1', 'org.freedesktop.DBus.ObjectManager', None)
for path, interfaces in manager.GetManagedObjects().items():
    handler = Gio.DBusProxy.new_sync(bus, Gio.DBusProxyFlags.NONE, None, 'org.kernel.TCMUService1', path,
                                     'org.kernel.TCMUService1', None)
    ok, why = handler.CheckConfig('(s)', path[path.rfind('/') + 1:] + '/x')
    print('user:' + path[path.rfind('/') + 1:], interfaces['org.kernel.TCMUService1']['ConfigDesc'], ok, why, sep='|')
"""

SERVICE = "import asyncio, logging, sys; logging.basicConfig(level=logging.INFO);" \
          " from targets.tcmu.dbus_service import serve_bus; asyncio.run(serve_bus('arraysim', sys.argv[1]))"


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[str]:
    """A private bus with the system bus's default policy and ours; its address."""
    socket = tmp_path / "bus"
    # Our policy file lets root own the name; another user running the tests needs a line of its own.
    own = "" if os.geteuid() == 0 else f'<policy user="{os.getuid()}"><allow own="{BUS_NAME}"/></policy>'
    config = tmp_path / "bus.conf"
    config.write_text(BUS_CONFIG.format(socket=socket, own=own, policy=POLICY))
    log = tmp_path / "dbus-daemon.log"
    with open(log, "wb") as out:
        daemon = subprocess.Popen(["dbus-daemon", "--nofork", f"--config-file={config}"], stderr=out)
    try:
        for _ in range(200):
            if socket.exists() or daemon.poll() is not None:
                break
            time.sleep(0.05)
        assert socket.exists(), f"dbus-daemon made no socket: {log.read_text()}"
        yield f"unix:path={socket}"
    finally:
        daemon.kill()
        daemon.wait()


def start_service(address: str, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-c", SERVICE, address], stdout=out, stderr=subprocess.STDOUT,
                                cwd=REPO)  # fmt: skip


def wait_for(log: Path, text: str) -> str:
    for _ in range(200):
        if text in log.read_text():
            return log.read_text()
        time.sleep(0.05)
    pytest.fail(f"{text!r} never came:\n{log.read_text()}")


def test_targetclis_own_client_finds_the_arraysim_handler_on_the_bus(bus: str, tmp_path: Path) -> None:
    service = start_service(bus, tmp_path / "service.log")
    try:
        wait_for(tmp_path / "service.log", "answers for user:arraysim")
        asked = subprocess.run(["/usr/bin/python3", "-c", TARGETCLI_CLIENT], capture_output=True, text=True,
                               timeout=60, env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": bus})  # fmt: skip
        assert asked.returncode == 0, asked.stderr
        name, description, ok, why = asked.stdout.strip().split("|")
        assert name == "user:arraysim" and description.startswith("arraysim/")
        assert ok == "False" and "Group Manager CLI" in why
        # A second service finds the name taken (as with tcmu-runner running), says so and ends.
        second = start_service(bus, tmp_path / "second.log")
        assert second.wait(timeout=30) == 0
        assert "owned by another service" in (tmp_path / "second.log").read_text()
        assert service.poll() is None  # the first one still answers
    finally:
        service.kill()
        service.wait()


def test_without_a_bus_the_service_says_so_and_ends(tmp_path: Path) -> None:
    service = start_service(f"unix:path={tmp_path / 'nobody-listens'}", tmp_path / "service.log")
    assert service.wait(timeout=30) == 0
    assert "targetcli will not list the user:arraysim backstores" in (tmp_path / "service.log").read_text()
