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


def _serve_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the offline stack (Azurite + web-service host) until Ctrl-C",
                       description="Start Azurite and the local web-service host with the feature-hashing "
                                   "experiment published. The first stdout line is one JSON object with "
                                   "everything a client needs (it holds the keys); then human-readable "
                                   "lines. Ctrl-C (or SIGTERM) stops everything.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=0, help="host port (default: a free port)")
    p.add_argument("--azurite-port", type=int, default=0, help="Azurite port (default: a free port)")
    p.add_argument("--no-storage", action="store_true", help="do not start Azurite (RRS only, no BES)")
    p.add_argument("--max-concurrent-calls", type=int, default=20, metavar="N",
                   help="RRS calls at once per service before 503 (default: %(default)s)")
    p.set_defaults(func=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    import json
    import signal
    import threading

    from .local import start

    logging.getLogger("azure").setLevel(logging.WARNING)  # the SDK logs every blob request at INFO
    stack = start(storage=not args.no_storage, host=args.host, port=args.port,
                  azurite_port=args.azurite_port, max_concurrent_calls=args.max_concurrent_calls)
    stopped = threading.Event()

    def _on_term(signum, frame):  # SIGTERM (e.g. from binder/start) stops as cleanly as Ctrl-C
        stopped.set()

    previous = signal.signal(signal.SIGTERM, _on_term)
    try:
        info = stack.info()
        print(json.dumps(info), flush=True)
        svc = stack.service
        print(f"web service  {info['base_url']}{svc.path}  ({svc.experiment.name})", flush=True)
        print(f"help page    {svc.help_url}", flush=True)
        if info.get("gateway_url"):
            print(f"gateway      {info['gateway_url']}", flush=True)
        if stack.azurite is not None:
            print(f"storage      {stack.azurite.blob_endpoint}  container {info['storage_container']}",
                  flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        while not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        stack.stop()
        print("offline stack stopped", file=sys.stderr, flush=True)
    return 0


def _lab_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lab", help="JupyterLab on the workshop notebooks, with the offline stack running",
                       description="Start the offline stack, export its details as AZML_* environment "
                                   "variables (and the JSON file named by AZML_STACK_INFO), then run "
                                   "JupyterLab on the notebooks. Stopping Lab (Ctrl-C twice, or File > "
                                   "Shut Down) stops the stack too.")
    p.add_argument("--notebooks", default=None, metavar="DIR",
                   help="folder to open (default: the repository's notebooks/)")
    p.add_argument("--port", type=int, default=8888, help="JupyterLab's port (default: %(default)s)")
    p.add_argument("--ip", default="127.0.0.1", help="JupyterLab's address (default: %(default)s)")
    p.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    p.add_argument("lab_args", nargs=argparse.REMAINDER, metavar="-- LAB_OPTIONS",
                   help="further JupyterLab options, after --")
    p.set_defaults(func=_cmd_lab)


def _cmd_lab(args: argparse.Namespace) -> int:
    import json
    import os
    import shutil
    import signal
    import subprocess
    import tempfile
    from pathlib import Path

    from . import _notebooks
    from .local import start

    root = Path(args.notebooks) if args.notebooks else _notebooks.NOTEBOOKS_DIR
    extra = [a for a in args.lab_args if a != "--"]
    state = Path(tempfile.mkdtemp(prefix="azml_nb-lab-"))
    log.info("starting the offline stack")
    stack = start()
    try:
        info = stack.info()
        info_path = state / "stack.json"
        info_path.write_text(json.dumps(info) + "\n", encoding="utf-8")
        info_path.chmod(0o600)                         # it holds the stack's keys
        env = dict(os.environ, **_notebooks.stack_env(info), AZML_STACK_INFO=str(info_path))
        log.info("offline stack up: web services at %s; details in %s (AZML_STACK_INFO)",
                 info["base_url"], info_path)
        cmd = _notebooks.lab_command(root, port=args.port, ip=args.ip,
                                     open_browser=not args.no_browser, extra=extra)
        lab = subprocess.Popen(cmd, env=env)
        # Lab handles Ctrl-C itself (it asks to confirm); wait for it, then stop the stack
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, lambda *_: lab.terminate())
        try:
            return lab.wait()
        finally:
            signal.signal(signal.SIGINT, previous)
    finally:
        log.info("stopping the offline stack")
        stack.stop()
        shutil.rmtree(state, ignore_errors=True)


# (name, parser builder); every builder sets `func` with `set_defaults`.
_COMMANDS: list[tuple[str, Callable[[argparse._SubParsersAction], None]]] = []
_COMMANDS.append(("apim", _apim_parser))
_COMMANDS.append(("lab", _lab_parser))
_COMMANDS.append(("serve", _serve_parser))


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
