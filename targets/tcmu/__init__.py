"""The TCMU (target_core_user) side of the LIO front end: a pure-Python handler.

Modules: ``abi`` (every offset and constant of the mailbox, ring entries and
TMR entries, one table), ``ring`` (the sans-IO ring consumer over the
mapping: take commands, complete them in any order), ``handler`` (ring
commands run on a ``targets.scsi.LogicalUnit``, still sans-IO), and the
system side beside them: ``uio`` (finding, opening and waking /dev/uioN),
``netlink`` (the listen-only TCM-USER member) and ``dbus_service`` (the
handler's ``org.kernel.TCMUService1`` on the system bus, for targetcli).
Design: research/lio.md sections 1, 3 and 4.
"""

from .handler import LIO_NEXUS, TcmuHandler
from .ring import CorruptEntry, MailboxError, Ring, RingCommand, RingError

__all__ = ["CorruptEntry", "LIO_NEXUS", "MailboxError", "Ring", "RingCommand", "RingError", "TcmuHandler"]
