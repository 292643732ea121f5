"""The ``array-sim`` console command: create a group, and speak Group Manager CLI to it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from array_sim import EngineError, Group, default_group_dir
from array_sim.units import parse_size

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="array-sim", description="A Dell EqualLogic PS Series group simulator.")
    commands = parser.add_subparsers(dest="command", required=True)

    init = commands.add_parser("init", help="create a group (pool 'default' with one member)")
    init.add_argument("--dir", type=Path, default=None, help="group directory (default: $ARRAY_SIM_DIR or per-user)")
    init.add_argument("--name", default="group-0", help="group name, also the CLI prompt (default group-0)")
    init.add_argument("--member-size", default="100GB", help="size of the first member (default 100GB)")
    init.add_argument("--group-ip", default="127.0.0.1", help="the group IP address (default 127.0.0.1)")
    init.add_argument("--if-missing", action="store_true", help="do nothing if the group already exists")

    cli = commands.add_parser("cli", help="run Group Manager CLI commands (interactive without COMMAND)")
    cli.add_argument("--dir", type=Path, default=None, help="group directory (default: $ARRAY_SIM_DIR or per-user)")
    cli.add_argument("--account", default="grpadmin", help="the account whose CLI settings apply")
    cli.add_argument("words", nargs=argparse.REMAINDER, metavar="COMMAND", help="one CLI command")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    directory = args.dir or default_group_dir()
    try:
        if args.command == "init":
            return _init(args, directory)
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
    with Group.init(directory, name=args.name, member_size=member_size, group_ip=args.group_ip) as group:
        print(f"Group {group.name} created in {directory} (pool default, member member-1, {args.member_size}).")
    return 0


def _cli(args: argparse.Namespace, directory: Path) -> int:
    from .cli.session import run_command_line, run_interactive

    with Group.open(directory) as group:
        if args.words:
            return run_command_line(group, args.account, args.words, sys.stdout)
        return run_interactive(group, args.account, sys.stdin, sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
