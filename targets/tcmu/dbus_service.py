"""The TCMU handler's face on the system bus: ``org.kernel.TCMUService1``, as tcmu-runner shows it.

targetcli builds its ``/backstores/user:<handler>`` nodes only from this service (targetcli-fb's
``ui_backstore._user_backstores``: an ObjectManager at ``/org/kernel/TCMUService1`` with one child
object per handler, whose ``org.kernel.TCMUService1`` interface has the property ``ConfigDesc`` and
the methods ``CheckConfig`` and ``ChangeMedium``; research/next-capabilities.md 4.1). Without it
``targetcli ls`` hides our ``user:arraysim`` storage objects, though their LUNs still show.

Rules of this module:

1. ``reply_to`` is pure (jeepney builds and parses D-Bus messages without I/O): every method call
   gets exactly one reply, from the ``METHODS`` table, or ``UnknownMethod`` /
   ``UnknownObject``; signals and replies get none.
2. Storage objects are made by ``serve`` from the catalog, never through targetcli: ``CheckConfig``
   answers false with the reason, and ``ChangeMedium`` fails the same way (a volume's size changes
   with the Group Manager CLI, ``volume select V size``).
3. ``serve_bus`` is the asyncio edge. It owns the name with ``DO_NOT_QUEUE``: if another service
   (tcmu-runner) has it, or there is no system bus, it says so in one log line and ends; LIO
   serving never depends on it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from jeepney import HeaderFields, Message, MessageType, new_error, new_method_return
from jeepney.bus_messages import message_bus
from jeepney.io.asyncio import open_dbus_connection

__all__ = ["BUS_NAME", "ROOT_PATH", "reply_to", "serve_bus"]

log = logging.getLogger("array_sim.lio")

BUS_NAME = "org.kernel.TCMUService1"
ROOT_PATH = "/org/kernel/TCMUService1"
INTERFACE = "org.kernel.TCMUService1"
OBJECT_MANAGER = "org.freedesktop.DBus.ObjectManager"
PROPERTIES = "org.freedesktop.DBus.Properties"
INTROSPECTABLE = "org.freedesktop.DBus.Introspectable"
PEER = "org.freedesktop.DBus.Peer"
#: ``RequestName`` flag and answer (the D-Bus specification, "Message Bus Messages").
DO_NOT_QUEUE = 4
PRIMARY_OWNER = 1
#: The serial of our ``RequestName`` (above any the connection's own counter reaches), to know its answer.
REQUEST_SERIAL = 0x7FFF_FFFF

#: Rule 2: why targetcli cannot make or change one of ours.
MADE_BY_SERVE = (
    "array-sim makes its user:{handler} storage objects from the group's volumes and snapshots: "
    "use the Group Manager CLI (volume create, volume select V size)"
)


def _handler_path(handler: str) -> str:
    return f"{ROOT_PATH}/{handler}"


def _properties(handler: str) -> dict[str, tuple[str, str]]:
    return {"ConfigDesc": ("s", f"{handler}/<unit serial>: made by array-sim serve --frontend lio, not here")}


def _introspection(handler: str, path: str) -> str:
    """What ``busctl introspect`` and ``gdbus introspect`` show."""
    arg = '<arg type="{}" direction="{}"/>'.format
    if path == ROOT_PATH:
        interfaces = [
            f'<interface name="{OBJECT_MANAGER}"><method name="GetManagedObjects">{arg("a{oa{sa{sv}}}", "out")}'
            "</method></interface>",
        ]
    else:
        interfaces = [
            f'<interface name="{INTERFACE}"><property name="ConfigDesc" type="s" access="read"/>'
            f'<method name="CheckConfig">{arg("s", "in")}{arg("b", "out")}{arg("s", "out")}</method>'
            f'<method name="ChangeMedium">{arg("s", "in")}{arg("t", "in")}{arg("s", "in")}{arg("i", "out")}'
            f'{arg("s", "out")}</method></interface>',
        ]
    interfaces += [
        f'<interface name="{PROPERTIES}"><method name="Get">{arg("s", "in")}{arg("s", "in")}{arg("v", "out")}'
        f'</method><method name="GetAll">{arg("s", "in")}{arg("a{sv}", "out")}</method></interface>',
        f'<interface name="{INTROSPECTABLE}"><method name="Introspect">{arg("s", "out")}</method></interface>',
        f'<interface name="{PEER}"><method name="Ping"/></interface>',
    ]
    child = f'<node name="{handler}"/>' if path == ROOT_PATH else ""
    return f"<node>{''.join(interfaces)}{child}</node>"


#: A method: (handler, object path, the call's body) -> (reply signature, reply body), or the name of
#: the D-Bus error to answer.
Method = Callable[[str, str, tuple], "tuple[str, tuple] | str"]


def _managed_objects(handler: str, path: str, body: tuple) -> tuple[str, tuple]:
    return "a{oa{sa{sv}}}", ({_handler_path(handler): {INTERFACE: _properties(handler)}},)


def _get_all(handler: str, path: str, body: tuple) -> tuple[str, tuple]:
    (interface,) = body
    return "a{sv}", (_properties(handler) if path != ROOT_PATH and interface == INTERFACE else {},)


def _get(handler: str, path: str, body: tuple) -> tuple[str, tuple] | str:
    interface, name = body
    value = _properties(handler).get(name) if path != ROOT_PATH and interface == INTERFACE else None
    if value is None:
        return "org.freedesktop.DBus.Error.UnknownProperty"
    return "v", (value,)


def _check_config(handler: str, path: str, body: tuple) -> tuple[str, tuple]:
    return "bs", (False, MADE_BY_SERVE.format(handler=handler))


def _change_medium(handler: str, path: str, body: tuple) -> tuple[str, tuple]:
    return "is", (-95, MADE_BY_SERVE.format(handler=handler))  # -EOPNOTSUPP, as a handler without it answers


def _introspect(handler: str, path: str, body: tuple) -> tuple[str, tuple]:
    return "s", (_introspection(handler, path),)


def _ping(handler: str, path: str, body: tuple) -> tuple[str, tuple]:
    return "", ()


#: Rule 1: (on the root object?, interface, member, call signature) -> the method.
METHODS: dict[tuple[bool, str, str, str], Method] = {
    (True, OBJECT_MANAGER, "GetManagedObjects", ""): _managed_objects,
    (True, PROPERTIES, "GetAll", "s"): _get_all,
    (False, PROPERTIES, "GetAll", "s"): _get_all,
    (True, PROPERTIES, "Get", "ss"): _get,
    (False, PROPERTIES, "Get", "ss"): _get,
    (False, INTERFACE, "CheckConfig", "s"): _check_config,
    (False, INTERFACE, "ChangeMedium", "sts"): _change_medium,
    (True, INTROSPECTABLE, "Introspect", ""): _introspect,
    (False, INTROSPECTABLE, "Introspect", ""): _introspect,
    (True, PEER, "Ping", ""): _ping,
    (False, PEER, "Ping", ""): _ping,
}


def reply_to(message: Message, handler: str) -> Message | None:
    """The reply to one incoming message (rule 1)."""
    header = message.header
    if header.message_type is not MessageType.method_call:
        return None
    fields = header.fields
    path = fields.get(HeaderFields.path, "")
    member = fields.get(HeaderFields.member, "")
    signature = fields.get(HeaderFields.signature, "")
    if path not in (ROOT_PATH, _handler_path(handler)):
        return new_error(message, "org.freedesktop.DBus.Error.UnknownObject", "s", (f"No object {path}",))
    interface = fields.get(HeaderFields.interface)
    if interface is None:  # allowed by the specification: the first interface with that member
        interface = next((i for (root, i, m, _) in METHODS if root == (path == ROOT_PATH) and m == member), "")
    method = METHODS.get((path == ROOT_PATH, interface, member, signature))
    if method is None:
        return new_error(
            message, "org.freedesktop.DBus.Error.UnknownMethod", "s",
            (f"No method {interface}.{member}({signature}) on {path}",),
        )  # fmt: skip
    answer = method(handler, path, message.body)
    if isinstance(answer, str):
        return new_error(message, answer)
    reply_signature, body = answer
    return new_method_return(message, reply_signature or None, body)


async def serve_bus(handler: str, bus: str = "SYSTEM") -> None:
    """Own ``BUS_NAME`` and answer until cancelled (rule 3)."""
    try:
        connection = await open_dbus_connection(bus)
    except (OSError, EOFError, KeyError) as error:  # no bus (KeyError: jeepney finds no address)
        log.warning("no D-Bus system bus (%s): targetcli will not list the user:%s backstores", error, handler)
        return
    try:
        request = message_bus.RequestName(BUS_NAME, DO_NOT_QUEUE)
        await connection.send(request, serial=REQUEST_SERIAL)
        while True:
            message = await connection.receive()
            if message.header.fields.get(HeaderFields.reply_serial) == REQUEST_SERIAL:
                if message.header.message_type is MessageType.error or message.body != (PRIMARY_OWNER,):
                    log.warning("%s is owned by another service (tcmu-runner?) or refused (%s): targetcli will"
                                " not list the user:%s backstores", BUS_NAME, message.body, handler)  # fmt: skip
                    return
                log.info("D-Bus: %s answers for user:%s", BUS_NAME, handler)
                continue
            reply = reply_to(message, handler)
            if reply is not None:
                await connection.send(reply)
    except EOFError:
        log.warning("the D-Bus system bus closed our connection: targetcli will not list user:%s", handler)
    finally:
        await connection.close()
