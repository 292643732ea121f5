"""Where the group IP and the member ports live on this host: the network the target listens on.

The catalog names every member port with a 127.0.0.x address (``array_sim.member_ports``). A port
network says what address initiators reach a catalog address at, makes the listening sockets, and
brings the ports' links up and down. Two implementations:

- ``Loopback`` (the default): the catalog addresses themselves, on this host's loopback interface
  (all of 127.0.0.0/8 reaches it on Linux, with no set-up and no root). A port that goes down is
  only no longer listened on.
- ``targets.netns_lab.NetnsLab`` (``serve --netns``, root only): every port in a network namespace
  of its own on a bridged SAN, so taking a port down pulls its cable for real.

Rules of this module:

1. ``address`` is a pure function of the catalog address: the group IP and every port keep the
   same address for the whole life of the server.
2. ``listen`` returns a bound, listening, non-blocking TCP socket, or raises ``OSError``.
3. ``sync`` is told every port address that exists (``ports``) and those that are up (``up``);
   it may block for a moment (the server runs it off the event loop).
"""

from __future__ import annotations

import socket
from typing import Protocol

__all__ = ["Loopback", "PortNetwork"]


class PortNetwork(Protocol):
    """What the iSCSI server needs of the network the group's ports are on (header)."""

    #: One line for the start-up log: where initiators run to reach the group.
    description: str

    def address(self, catalog_address: str) -> str: ...
    def listen(self, address: str, port: int) -> socket.socket: ...
    def sync(self, ports: set[str], up: set[str]) -> None: ...
    def close(self) -> None: ...


def listening_socket(address: str, port: int) -> socket.socket:
    """A TCP socket listening on ``address:port`` (rule 2), in the calling thread's namespace."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class Loopback:
    """Ports on this host's loopback interface, at their catalog addresses (header)."""

    description = "initiators on this host"

    def address(self, catalog_address: str) -> str:
        return catalog_address

    def listen(self, address: str, port: int) -> socket.socket:
        return listening_socket(address, port)

    def sync(self, ports: set[str], up: set[str]) -> None:
        """Nothing to bring up or down: a port that is down is simply not listened on."""

    def close(self) -> None:
        """Nothing was made."""
