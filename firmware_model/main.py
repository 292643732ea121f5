"""The ``array-sim`` console command: create a group, and speak Group Manager CLI to it.

A one-shot ``array-sim cli COMMAND`` exits 1 when the command is refused or when
its confirmation question is not answered yes (``--yes`` answers it), so a
script never takes an unconfirmed delete for a done one (research/review.md A3).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from array_sim import EngineError, Group, GroupLocked, default_group_dir
from array_sim.accounts import DEFAULT_ADMIN, Accounts, check_password_rule, generate_password
from array_sim.clock import parse_clock_time
from array_sim.member_admin import DEFAULT_DISKS, DEFAULT_RAID_POLICY, FILE_LAYOUT
from array_sim.raid.policy import POLICIES
from array_sim.units import parse_size

from .cli.session import CliSession, Session, run_command_line, run_interactive
from .control import SOCKET_NAME, RemoteSession

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="array-sim", description="A Dell EqualLogic PS Series group simulator.")
    commands = parser.add_subparsers(dest="command", required=True)

    init = commands.add_parser("init", help="create a group (pool 'default' with one member)")
    init.add_argument("--dir", type=Path, default=None, help="group directory (default: $ARRAY_SIM_DIR or per-user)")
    init.add_argument("--name", default="group-0", help="group name, also the CLI prompt (default group-0)")
    init.add_argument("--member-size", default="100GB", help="usable capacity of the first member (default 100GB)")
    init.add_argument("--disks", type=int, default=DEFAULT_DISKS, help=f"disks of the first member (default {DEFAULT_DISKS})")
    init.add_argument(
        "--raid-policy",
        default=DEFAULT_RAID_POLICY,
        choices=[*POLICIES, FILE_LAYOUT],
        help="its RAID policy (default raid6; 'file': no RAID, one sparse file)",
    )
    init.add_argument("--group-ip", default="127.0.0.1", help="the group IP address (default 127.0.0.1)")
    init.add_argument("--if-missing", action="store_true", help="do nothing if the group already exists")
    init.add_argument(
        "--admin-password", default=None, metavar="P",
        help="the password of the account grpadmin (SSH logins; 3 to 13 characters); default: one is made and shown",
    )  # fmt: skip

    serve = commands.add_parser("serve", help="serve the group's volumes and snapshots as iSCSI targets")
    serve.add_argument("--dir", type=Path, default=None, help="group directory (created on first run)")
    serve.add_argument("--portal", default=None, help="IP:PORT to listen on, the group IP (default 127.0.0.1:3260)")
    serve.add_argument("--nop-interval", type=float, default=30.0, help="seconds of silence before a NOP-In ping")
    serve.add_argument(
        "--no-redirect", action="store_true",
        help="serve every login where it arrives instead of redirecting it from the group IP to a member port"
        " (for initiators behind NAT: a QEMU guest on user networking, a container)",
    )  # fmt: skip
    serve.add_argument(
        "--frontend", choices=("embedded", "lio"), default="embedded",
        help="who speaks iSCSI: our embedded target (default; no root), or the kernel's LIO through rtslib-fb"
        " and a TCMU handler in this process (root, target_core_user and iscsi_target_mod loaded)",
    )  # fmt: skip
    serve.add_argument(
        "--netns", action="store_true",
        help="root only: put the group IP and every member port in network namespaces on a bridge (198.51.100.0/24),"
        " so 'simulate member select M eth N down' pulls a real cable; initiators run in namespace asim-GROUP-host",
    )  # fmt: skip
    serve.add_argument(
        "--clock", choices=("real", "simulated"), default="real",
        help="the group's time: real (default), or a simulated clock that stands still until"
        " 'simulate clock advance|set' moves it (kept in the group: a restart resumes it)",
    )  # fmt: skip
    serve.add_argument(
        "--clock-start", type=_clock_time, default=None, metavar='"YYYY-MM-DD HH:MM[:SS]"',
        help="with --clock simulated: start the clock at this time (default: where it stood, else now)",
    )  # fmt: skip

    serve.add_argument(
        "--ssh-port", type=_ssh_port, default=None, metavar="N|off",
        help="the Group Manager CLI over SSH on the group IP at port N (0: any free port, logged);"
        " default 22, or no SSH (one log line) if 22 cannot be listened on; off: no SSH",
    )  # fmt: skip

    cli = commands.add_parser("cli", help="run Group Manager CLI commands (interactive without COMMAND)")
    cli.add_argument("--dir", type=Path, default=None, help="group directory (default: $ARRAY_SIM_DIR or per-user)")
    cli.add_argument("--account", default="grpadmin", help="the account whose CLI settings apply")
    cli.add_argument("--yes", action="store_true", help="answer y to a one-shot command's confirmation question")
    cli.add_argument("words", nargs=argparse.REMAINDER, metavar="COMMAND", help="one CLI command")
    return parser


def _clock_time(text: str) -> datetime:
    try:
        return parse_clock_time(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _ssh_port(text: str) -> int | str:
    if text == "off":
        return text
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"invalid port '{text}'; use 0 to 65535, or off")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    directory = args.dir or default_group_dir()
    try:
        if args.command == "init":
            return _init(args, directory)
        if args.command == "serve":
            from .serve import serve

            if args.clock_start is not None and args.clock != "simulated":
                print("array-sim: --clock-start needs --clock simulated", file=sys.stderr)
                return 2
            return serve(directory, args.portal, args.nop_interval, redirect=not args.no_redirect, netns=args.netns,
                         frontend=args.frontend, clock=args.clock, clock_start=args.clock_start,
                         ssh_port=None if args.ssh_port == "off" else args.ssh_port,
                         ssh=args.ssh_port != "off")  # fmt: skip
        return _cli(args, directory)
    except EngineError as error:
        print(f"array-sim: {error}", file=sys.stderr)
        return 1


def _init(args: argparse.Namespace, directory: Path) -> int:
    if args.if_missing and (directory / "catalog.sqlite3").exists():
        return 0
    try:
        member_size = parse_size(args.member_size)
    except ValueError as error:
        print(f"array-sim: {error}", file=sys.stderr)
        return 2
    try:
        if args.admin_password is not None:
            check_password_rule(args.admin_password)
        group = Group.init(
            directory, args.name, member_size, args.group_ip, disks=args.disks, raid_policy=args.raid_policy
        )
    except EngineError as error:
        print(f"array-sim: {error}", file=sys.stderr)
        return 2
    layout = "one file, no RAID" if args.raid_policy == FILE_LAYOUT else f"{args.raid_policy} over {args.disks} disks"
    with group:
        print(f"Group {group.name} created in {directory} (pool default, member member-1: {args.member_size}, {layout}).")
        password = args.admin_password or generate_password()
        Accounts(group.catalog, group.clock).create(DEFAULT_ADMIN, password, description="the default administrator")
        if args.admin_password is None:
            print(f"SSH account {DEFAULT_ADMIN}, password {password} (shown only now; 'account select {DEFAULT_ADMIN}"
                  " passwd P' changes it).")  # fmt: skip
    return 0


def _cli(args: argparse.Namespace, directory: Path) -> int:
    interactive = not args.words and sys.stdin.isatty()
    try:
        group = Group.open(directory)
    except GroupLocked:
        if not (directory / SOCKET_NAME).exists():
            raise
        remote = RemoteSession(directory, args.account, interactive)
        try:
            return _run_cli(remote, args)
        finally:
            remote.close()
    with group:
        return _run_cli(Session(group, args.account, interactive), args)


def _run_cli(session: CliSession, args: argparse.Namespace) -> int:
    if args.words:
        return run_command_line(session, args.words, sys.stdin, sys.stdout, args.yes)
    return run_interactive(session, sys.stdin, sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
