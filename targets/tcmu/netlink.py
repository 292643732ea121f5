"""A listen-only member of the TCM-USER generic netlink family, so the kernel accepts a resize.

research/lio.md 3.7: writing ``attrib/dev_size`` of an enabled TCMU device sends a RECONFIG event
on the family's ``config`` multicast group, and with no socket in that group the write fails with
ESRCH ("Unable to reconfigure device"). Rules of this module:

1. We join the group and only read (the server drains the socket so it never fills). We never
   send SET_FEATURES and never reply: every device is made with ``nl_reply_supported=-1``, so the
   kernel waits for no answer (lio.md rule 4).
2. Only the family's id and the group's id are parsed, from the CTRL_CMD_GETFAMILY answer
   (``linux/genetlink.h``); events themselves are not decoded: the engine already knows the new
   size, since it asked for it.
"""

from __future__ import annotations

import os
import socket
import struct

__all__ = ["TcmuNetlink"]

NETLINK_GENERIC = 16
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2
CTRL_ATTR_MCAST_GROUPS = 7
CTRL_ATTR_MCAST_GRP_NAME = 1
CTRL_ATTR_MCAST_GRP_ID = 2
NLM_F_REQUEST = 1
NLMSG_ERROR = 2
FAMILY = "TCM-USER"
GROUP = "config"


def _attributes(data: bytes) -> dict[int, bytes]:
    """Netlink attributes (``struct nlattr``, 4-byte aligned) by type."""
    found, offset = {}, 0
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            break
        found[kind & 0x3FFF] = data[offset + 4 : offset + length]
        offset += (length + 3) & ~3
    return found


class TcmuNetlink:
    """Joins TCM-USER's ``config`` group (rule 1); ``fileno`` for the event loop, ``drain`` to read."""

    def __init__(self, family: str = FAMILY, group: str = GROUP) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
        try:
            self.sock.bind((0, 0))
            self.sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, self._group_id(family, group))
            self.sock.setblocking(False)
        except BaseException:
            self.sock.close()
            raise

    def _group_id(self, family: str, group_name: str) -> int:
        """Ask the controller for the family's multicast groups (rule 2)."""
        encoded = family.encode() + b"\0"
        name = struct.pack("=HH", 4 + len(encoded), CTRL_ATTR_FAMILY_NAME) + encoded
        name += b"\0" * (-len(name) % 4)
        body = struct.pack("=BBH", CTRL_CMD_GETFAMILY, 1, 0) + name
        self.sock.send(struct.pack("=IHHII", 16 + len(body), GENL_ID_CTRL, NLM_F_REQUEST, 1, os.getpid()) + body)
        reply = self.sock.recv(65536)
        length, kind = struct.unpack_from("=IH", reply)
        if kind == NLMSG_ERROR:
            (error,) = struct.unpack_from("=i", reply, 16)
            raise OSError(-error, f"the kernel has no {family} netlink family (is target_core_user loaded?)")
        groups = _attributes(reply[20:length]).get(CTRL_ATTR_MCAST_GROUPS, b"")
        for group in _attributes(groups).values():
            fields = _attributes(group)
            if fields.get(CTRL_ATTR_MCAST_GRP_NAME, b"").rstrip(b"\0").decode() == group_name:
                return struct.unpack("=I", fields[CTRL_ATTR_MCAST_GRP_ID])[0]
        raise OSError(f"{family} has no '{group_name}' multicast group")

    def fileno(self) -> int:
        return self.sock.fileno()

    def drain(self) -> None:
        """Read and drop what the kernel sent (rule 2)."""
        try:
            while self.sock.recv(65536):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        self.sock.close()
