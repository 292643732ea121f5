"""The Group Manager CLI over SSH (asyncssh): ``serve``'s listener on the group IP.

``server`` listens, keeps the host keys and logs accounts in; ``channel`` runs each session channel
as one CLI ``Session`` on the engine owner
(``account_session``: what a read-only account may do in it); ``lines`` frames what goes in and out (sans-IO);
``guard`` slows repeated refused logins down (sans-IO).
"""

from .server import DEFAULT_SSH_PORT, SshListenError, SshServer

__all__ = ["DEFAULT_SSH_PORT", "SshListenError", "SshServer"]
