"""The ``azml-nb`` command.

Each subcommand is a pair: ``_<name>_parser(subparsers)`` declares its options and
``_cmd_<name>(args) -> int`` runs it. Register new pairs in ``_COMMANDS``. Progress and
human-readable messages go to stderr; data (CSV, JSON) goes to stdout or a file.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, Sequence

from . import __version__
from .errors import AzmlError

log = logging.getLogger("azml_nb")


# --- subcommands -------------------------------------------------------------------------

# (name, parser builder); every builder sets `func` with `set_defaults`.
_COMMANDS: list[tuple[str, Callable[[argparse._SubParsersAction], None]]] = []


# --- entry point -------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="azml-nb",
        description="Score DataFrames against AzureML web services; run the offline stack.")
    parser.add_argument("--version", action="version", version=f"azml-nb {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for _name, add in _COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return int(args.func(args) or 0)
    except AzmlError as err:
        print(f"azml-nb {args.command}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"azml-nb {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
