"""``serve --netns``: the group's SAN in Linux network namespaces, so a port's cable can be pulled.

research/next-capabilities.md 3: namespaces and veth pairs made with pyroute2 need root
(CAP_SYS_ADMIN and CAP_NET_ADMIN); TCP between two namespaces on a bridge works, from the host's
own namespace into one it may not (host forwarding and firewall rules), so initiators run in a
namespace of the lab too. The lab for group ``G`` (names start with ``asim-G-``):

- ``asim-G-san``: the SAN, a bridge ``san`` that carries the group IP;
- ``asim-G-p<N>``: one namespace per member port, whose ``eth0`` is the port, cabled to the bridge
  by a veth pair (``p<N>`` on the bridge side);
- ``asim-G-host``: where initiators run (``ip netns exec asim-G-host iscsi-ls ...``), with
  ``eth0`` at ``HOST_ADDRESS``.

Rules of this module:

1. Addresses are in 198.51.100.0/24 (TEST-NET-2, RFC 5737: never routed anywhere), and keep the last
   octet of the catalog address: 127.0.0.1 is 198.51.100.1, member port 127.0.0.11 is 198.51.100.11
   (``port_network`` rule 1). No address leaves the lab's namespaces.
2. A port that is down has its cable pulled: the bridge side of its veth pair is set down, so
   nothing reaches it and nothing it sends arrives; up again, it is plugged back. A port whose
   member left the group loses its namespace.
3. ``open`` removes what a previous lab of the same group left behind (a ``kill -9``) before it
   builds; ``close`` removes every namespace the lab made (a veth pair goes with its namespace).
   A lab whose owner still runs (its pid in ``/run/array-sim-<prefix>pid``) is never touched: a
   second group of the same name is refused.
4. Nothing forks: a forked child would share the server's signal wake-up descriptor, and a signal
   it gets would reach the server's loop (pyroute2 forks to make a socket in a named namespace, or
   to create one). Every namespace is entered, or created (``unshare``, then bound from
   /proc/thread-self), by a short-lived thread of its own (namespaces are per thread), which
   makes the netlink socket or the listening socket there; the server's own threads never change
   namespace.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from .port_network import listening_socket

__all__ = ["HOST_ADDRESS", "LabError", "NetnsLab"]

#: Rule 1.
SAN_PREFIX = "198.51.100."
PREFIX_LENGTH = 24
#: The initiators' namespace's address on the SAN.
HOST_ADDRESS = SAN_PREFIX + "250"
BRIDGE = "san"
#: unshare(2) flag for a new network namespace.
CLONE_NEWNET = 0x40000000

T = TypeVar("T")


class LabError(Exception):
    """The lab cannot be built here (not root, no pyroute2, the kernel refused)."""


def _pyroute2():  # noqa: ANN202 - the module, imported only when a lab is asked for
    try:
        import pyroute2
        from pyroute2 import netns
    except ImportError:
        raise LabError("serve --netns needs pyroute2 (pip install pyroute2)") from None
    return pyroute2, netns


class NetnsLab:
    """The SAN of one group in network namespaces (header)."""

    def __init__(self, group_name: str) -> None:
        self.prefix = f"asim-{group_name}-"
        self.san = self.prefix + "san"
        self.host = self.prefix + "host"
        self.description = f"initiators in network namespace {self.host} (ip netns exec {self.host} ...)"
        #: Port address (198.51.100.N) -> its namespace, for every port the lab has made.
        self._ports: dict[str, str] = {}
        self._pyroute2, self._netns = _pyroute2()
        self._pidfile = Path("/run") / f"array-sim-{self.prefix}pid"

    # ------------------------------------------------------------ building

    def open(self, group_address: str) -> None:
        """Build the SAN with the group IP on its bridge and the initiators' namespace (rule 3)."""
        if os.geteuid() != 0:
            raise LabError("serve --netns needs root: network namespaces and veth pairs (CAP_SYS_ADMIN)")
        owner = self._owner()
        if owner is not None:
            raise LabError(f"array-sim serve (pid {owner}) runs the network namespaces of a group of this name;"
                           " give this group another name (init --name)")  # fmt: skip
        self._remove_all()
        self._pidfile.write_text(f"{os.getpid()}\n")
        try:
            self._in(self.san, self._bridge, group_address, create=True)
            self._cable(self.host, "host", HOST_ADDRESS)
        except OSError as error:
            self._remove_all()
            raise LabError(f"cannot build the network namespaces: {error.strerror or error}") from None

    def _owner(self) -> int | None:
        """The pid of a live process that owns a lab of this name, if any (rule 3)."""
        try:
            pid = int(self._pidfile.read_text())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid if pid != os.getpid() else None

    def _in(self, namespace: str, work: Callable[..., T], *args: object, create: bool = False) -> T:
        """Run ``work(ipr, *args)`` with an IPRoute in ``namespace``, on a thread of its own (rule 4)."""
        done: list[T] = []
        failed: list[BaseException] = []

        def run() -> None:
            try:
                if create:
                    libc = ctypes.CDLL(None, use_errno=True)
                    if libc.unshare(CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), "unshare failed")
                    self._netns.attach(namespace, "thread-self")
                else:
                    self._netns.setns(namespace, flags=0)
                with self._pyroute2.IPRoute() as ipr:
                    done.append(work(ipr, *args))
            except BaseException as error:  # handed to the caller's thread
                failed.append(error)

        thread = threading.Thread(target=run, name=f"netns {namespace}")
        thread.start()
        thread.join()
        if failed:
            raise failed[0]
        return done[0]

    @staticmethod
    def _bridge(ipr, group_address: str) -> None:  # noqa: ANN001 - a pyroute2 IPRoute
        ipr.link("add", ifname=BRIDGE, kind="bridge")
        bridge = ipr.link_lookup(ifname=BRIDGE)[0]
        ipr.addr("add", index=bridge, address=group_address, prefixlen=PREFIX_LENGTH)
        ipr.link("set", index=bridge, state="up")
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")

    def _cable(self, namespace: str, bridge_side: str, address: str) -> None:
        """A namespace whose ``eth0`` at ``address`` is cabled to the bridge (rule 2)."""

        def plug(ipr) -> None:  # noqa: ANN001 - in the SAN
            ipr.link("add", ifname=bridge_side, kind="veth", peer={"ifname": "eth0", "net_ns_fd": namespace})
            index = ipr.link_lookup(ifname=bridge_side)[0]
            ipr.link("set", index=index, master=ipr.link_lookup(ifname=BRIDGE)[0], state="up")

        def configure(ipr) -> None:  # noqa: ANN001 - in the new namespace
            eth0 = ipr.link_lookup(ifname="eth0")[0]
            ipr.addr("add", index=eth0, address=address, prefixlen=PREFIX_LENGTH)
            ipr.link("set", index=eth0, state="up")
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")

        self._in(namespace, lambda ipr: None, create=True)
        self._in(self.san, plug)
        self._in(namespace, configure)

    # ------------------------------------------------------------ PortNetwork

    def address(self, catalog_address: str) -> str:
        """Rule 1."""
        return SAN_PREFIX + catalog_address.rpartition(".")[2]

    def listen(self, address: str, port: int) -> socket.socket:
        """A listening socket in the namespace that holds ``address``: a port's, else the SAN's (rule 4)."""
        return self._in(self._ports.get(address, self.san), lambda ipr: listening_socket(address, port))

    def sync(self, ports: set[str], up: set[str]) -> None:
        """Make the namespaces of new ports, remove those of ports that left, cable state as ``up``."""
        for address in sorted(set(self._ports) - ports):
            self._netns.remove(self._ports.pop(address))
        for address in sorted(ports - set(self._ports)):
            namespace = f"{self.prefix}p{address.rpartition('.')[2]}"
            self._cable(namespace, self._bridge_side(address), address)
            self._ports[address] = namespace

        def cables(ipr) -> None:  # noqa: ANN001 - in the SAN
            for address in self._ports:
                index = ipr.link_lookup(ifname=self._bridge_side(address))[0]
                ipr.link("set", index=index, state="up" if address in up else "down")

        self._in(self.san, cables)

    @staticmethod
    def _bridge_side(address: str) -> str:
        return "p" + address.rpartition(".")[2]

    def close(self) -> None:
        """Rule 3."""
        self._remove_all()
        self._ports.clear()
        self._pidfile.unlink(missing_ok=True)

    def _remove_all(self) -> None:
        for namespace in self._netns.listnetns():
            if namespace.startswith(self.prefix):
                self._netns.remove(namespace)
