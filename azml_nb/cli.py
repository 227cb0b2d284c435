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

def _apim_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("apim", help="API Management: export the gateway set-up for a real APIM",
                       description="Write the API as OpenAPI 3.0 (for `az apim api import`) and print "
                                   "the az commands that recreate the local gateway's set-up.")
    verbs = p.add_subparsers(dest="apim_command", metavar="VERB", required=True)
    e = verbs.add_parser("export", help="write the OpenAPI document; print the az apim commands")
    e.add_argument("-o", "--output", default="azureml-demo.openapi.json", metavar="FILE",
                   help="where to write the OpenAPI JSON (default: %(default)s; '-' = stdout, "
                        "then the commands go to stderr)")
    e.add_argument("--service-url", default=None, metavar="URL",
                   help="backend web service URL (default: https://ussouthcentral.services.azureml.net)")
    e.add_argument("--swagger", default=None, metavar="FILE",
                   help="the service's swagger.json, for its column schema")
    e.add_argument("--name", default="demoazureml", help="APIM instance name (default: %(default)s)")
    e.add_argument("--resource-group", default="azureml-demo-rg", help="default: %(default)s")
    e.set_defaults(func=_cmd_apim)


def _cmd_apim(args: argparse.Namespace) -> int:
    import json

    from .apim import DEFAULT_SERVICE_URL, az_commands
    from .local.gateway import demo_gateway

    swagger = None
    if args.swagger:
        with open(args.swagger, encoding="utf-8") as f:
            swagger = json.load(f)
    # the demo configuration; the backend key is a placeholder, exported only as "$AZUREML_API_KEY"
    gw = demo_gateway(args.service_url or DEFAULT_SERVICE_URL, "<backend key>", name=args.name)
    text = json.dumps(gw.openapi(swagger=swagger), indent=2) + "\n"
    spec_path = "azureml-demo.openapi.json" if args.output == "-" else args.output
    script = az_commands(gw, specification_path=spec_path, resource_group=args.resource_group)
    if args.output == "-":
        sys.stdout.write(text)
        sys.stderr.write(script)
    else:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
        log.info("wrote %s", args.output)
        sys.stdout.write(script)
    return 0


# (name, parser builder); every builder sets `func` with `set_defaults`.
_COMMANDS: list[tuple[str, Callable[[argparse._SubParsersAction], None]]] = []
_COMMANDS.append(("apim", _apim_parser))


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
