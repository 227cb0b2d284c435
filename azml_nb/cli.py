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
    e = verbs.add_parser("export", help="write the OpenAPI document; print the az apim commands",
                         description="Write the demo API (RRS Execute, four BES operations, the service's "
                                     "swagger.json) as an OpenAPI 3.0 document and print a bash script of "
                                     "az commands that creates the same instance, API, products and "
                                     "subscriptions in Azure, e.g. `azml-nb apim export > create-apim.sh`. "
                                     "The backend key is read from $AZUREML_API_KEY when the script runs.")
    e.add_argument("-o", "--output", default="azureml-demo.openapi.json", metavar="FILE",
                   help="where to write the OpenAPI JSON (default: %(default)s; '-' = stdout, "
                        "then the commands go to stderr)")
    e.add_argument("--service-url", default=None, metavar="URL",
                   help="backend web service URL (default: https://ussouthcentral.services.azureml.net)")
    e.add_argument("--swagger", default=None, metavar="FILE",
                   help="the service's swagger.json, for its column schema")
    e.add_argument("--name", default="demoazureml", help="APIM instance name (default: %(default)s)")
    e.add_argument("--resource-group", default="azureml-demo-rg", metavar="RG",
                   help="Azure resource group for the instance (default: %(default)s)")
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
    p = sub.add_parser("serve", help="run the offline stack (Azurite, web-service host, gateway) until Ctrl-C",
                       description="Start Azurite, the local web-service host with the feature-hashing "
                                   "experiment published, and the APIM-style gateway in front of it. "
                                   "The first stdout line is one JSON object with "
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

    from .errors import LocalStackError

    logging.getLogger("azure").setLevel(logging.WARNING)  # the SDK logs every blob request at INFO
    try:
        stack = start(storage=not args.no_storage, host=args.host, port=args.port,
                      azurite_port=args.azurite_port, max_concurrent_calls=args.max_concurrent_calls)
    except LocalStackError as err:
        hint = "" if args.no_storage else " (or run `azml-nb serve --no-storage` for RRS without blob storage)"
        raise LocalStackError(f"{err}{hint}") from err
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
    p.add_argument("--no-stack", action="store_true",
                   help="do not start the offline stack; the notebooks use the AZML_* variables "
                        "already set (a real service) or start a stack of their own")
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
    stack = None
    try:
        env = dict(os.environ)
        if not args.no_stack:
            # the offline stack's variables replace any AZML_* settings (AZML_REGION, ...)
            env = {k: v for k, v in env.items() if not k.startswith("AZML_") or k.startswith("AZML_NB_")}
            log.info("starting the offline stack")
            stack = start()
            info = stack.info()
            info_path = state / "stack.json"
            info_path.write_text(json.dumps(info) + "\n", encoding="utf-8")
            info_path.chmod(0o600)                     # it holds the stack's keys
            env.update(_notebooks.stack_env(info), AZML_STACK_INFO=str(info_path))
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
        if stack is not None:
            log.info("stopping the offline stack")
            stack.stop()
        shutil.rmtree(state, ignore_errors=True)


def _hash_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hash", help="Feature Hashing of text columns: CSV in, CSV out",
                       description="Append {column}_HashingFeature.{i} count columns to a CSV, "
                                   "exactly like Studio's Feature Hashing module (see docs/hashing.md).")
    p.add_argument("input", metavar="IN.csv", help="input CSV with a header row ('-' = stdin)")
    p.add_argument("-o", "--output", default="-", metavar="OUT.csv",
                   help="output CSV (default: '-' = stdout)")
    p.add_argument("--columns", action="append", required=True, metavar="COL[,COL...]",
                   help="text column(s) to hash; repeat or separate with commas")
    p.add_argument("--bitsize", type=int, default=10, help="1..31 (default: %(default)s)")
    p.add_argument("--ngrams", type=int, default=2, help="0..10 (default: %(default)s)")
    p.add_argument("--stringify", action="store_true",
                   help="hash str(value) of non-text cells instead of failing")
    p.set_defaults(func=_cmd_hash)


def _cmd_hash(args: argparse.Namespace) -> int:
    import pandas as pd

    from .hashing import _check_params, feature_hashing

    columns = [c for item in args.columns for c in item.split(",") if c]
    source = sys.stdin if args.input == "-" else args.input
    try:
        _check_params(args.bitsize, args.ngrams)
        # the text columns stay text even when a cell looks like a number; empty cells are missing
        df = pd.read_csv(source, dtype={c: "str" for c in columns})
        out = feature_hashing(df, columns, args.bitsize, args.ngrams, stringify=args.stringify)
    except AzmlError:
        raise
    except MemoryError as err:
        print(f"azml-nb hash: {str(err).split(';')[0]}; choose a smaller --bitsize (or, in Python, "
              "feature_hashing(..., sparse=True) for a sparse matrix)", file=sys.stderr)
        return 2
    except (ValueError, OSError) as err:      # EmptyDataError is a ValueError
        print(f"azml-nb hash: {_file_error(err) if isinstance(err, OSError) else err}", file=sys.stderr)
        return 2
    out.to_csv(sys.stdout if args.output == "-" else args.output, index=False)
    if args.output != "-":
        log.info("wrote %d rows x %d columns to %s", len(out), out.shape[1], args.output)
    return 0


# (name, parser builder); every builder sets `func` with `set_defaults`.
def _client_options(p: argparse.ArgumentParser) -> None:
    """Options shared by `score` and `batch`: where the credentials come from."""
    p.add_argument("--info", metavar="FILE",
                   help="a file holding the first line `azml-nb serve` prints (its JSON); "
                        "default: the AZML_* environment variables")
    via = p.add_mutually_exclusive_group()
    via.add_argument("--gateway", dest="gateway", action="store_const", const=True, default=None,
                     help="go through the APIM gateway (needs gateway_url and subscription_key)")
    via.add_argument("--direct", dest="gateway", action="store_const", const=False,
                     help="call the service directly with its API key, even when a gateway is named")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a GlobalParameters entry (repeatable); VALUE is read as JSON when it parses")
    p.add_argument("--no-progress", action="store_true", help="no progress display on stderr")


def _web_service(args: argparse.Namespace):
    from .errors import ConfigurationError
    from .service import WebService

    if args.info:
        return WebService.from_info(args.info, gateway=args.gateway)
    try:
        return WebService.from_env(gateway=args.gateway)
    except ConfigurationError as err:
        raise ConfigurationError(
            f"{err}. Export the AZML_* variables (see docs/scoring.md), or pass --info FILE with "
            "the first line `azml-nb serve` prints") from err


def _global_parameters(pairs: Sequence[str]) -> dict:
    import json

    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise SystemExit(f"azml-nb: --param expects NAME=VALUE, got {pair!r}")
        try:
            params[name.strip()] = json.loads(value)
        except ValueError:
            params[name.strip()] = value
    return params


def _write_frames(result, output: str) -> None:
    """Write a frame (or {name: frame}) as CSV to *output* ('-' = stdout)."""
    import os

    frames = result if isinstance(result, dict) else {None: result}
    for name, frame in frames.items():
        if output == "-":
            frame.to_csv(sys.stdout, index=False)
            continue
        target = output
        if name is not None and len(frames) > 1:
            stem, ext = os.path.splitext(output)
            target = f"{stem}.{name}{ext or '.csv'}"
        frame.to_csv(target, index=False)
        log.info("wrote %d rows to %s", len(frame), target)


def _score_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score a CSV file with a request-response (RRS) web service",
                       description="Read a CSV file (header row), score it in concurrent batches with "
                                   "retries, and write the typed result as CSV. Credentials come from "
                                   "AZML_* environment variables or --info.")
    p.add_argument("input", metavar="INPUT.csv", help="CSV file with a header row ('-' = stdin)")
    p.add_argument("-o", "--output", default="-", metavar="OUTPUT.csv", help="default: stdout")
    _client_options(p)
    p.add_argument("--format", choices=("classic", "swagger"), default="classic",
                   help="request body layout: column names + value rows, or row records "
                        "(default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=None, metavar="N",
                   help="rows per request (default: 1000)")
    p.add_argument("--max-workers", type=int, default=None, metavar="N",
                   help="requests at once (default: 4)")
    p.add_argument("--max-request-bytes", type=int, default=None, metavar="N",
                   help="largest request body; batches are cut smaller to fit (default: 4000000)")
    p.add_argument("--keep-going", action="store_true",
                   help="write every batch that succeeded, report the failed rows, exit 1")
    p.set_defaults(func=_cmd_score)


def _cmd_score(args: argparse.Namespace) -> int:
    import pandas as pd

    svc = _web_service(args)
    frame = pd.read_csv(sys.stdin if args.input == "-" else args.input)
    result = svc.score(frame, format=args.format, batch_size=args.batch_size,
                       max_workers=args.max_workers, max_request_bytes=args.max_request_bytes,
                       global_parameters=_global_parameters(args.param) or None,
                       errors="collect" if args.keep_going else "raise", progress=not args.no_progress)
    if not args.keep_going:
        _write_frames(result, args.output)
        return 0
    _write_frames(result.output, args.output)
    for err in result.failures:
        print(f"azml-nb score: {err}", file=sys.stderr)
    if result.failures:
        print(f"azml-nb score: {len(result.failed_rows)} of {len(frame)} rows failed "
              "(0-based data rows listed above)", file=sys.stderr)
        return 1
    return 0


def _batch_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("batch", help="score a CSV file with a batch execution (BES) job",
                       description="Upload the CSV file (header row) to blob storage "
                                   "(AZML_STORAGE_CONNECTION_STRING or the serve JSON), run a BES job, "
                                   "wait for it and write its output as CSV. --job re-attaches to a "
                                   "job by its id; --cancel cancels one.")
    p.add_argument("input", metavar="INPUT.csv", nargs="?", help="CSV file with a header row")
    p.add_argument("-o", "--output", default="-", metavar="OUTPUT.csv",
                   help="default: stdout (several outputs: OUTPUT.<name>.csv)")
    _client_options(p)
    what = p.add_mutually_exclusive_group()
    what.add_argument("--job", metavar="ID", help="re-attach to this job instead of submitting")
    what.add_argument("--cancel", metavar="ID", help="cancel this job and exit")
    p.add_argument("--no-wait", action="store_true", help="submit, print the job id on stdout, exit")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help="give up waiting after this")
    p.add_argument("--cleanup", action="store_true", help="delete the uploaded and output blobs afterwards")
    p.set_defaults(func=_cmd_batch)


def _cmd_batch(args: argparse.Namespace) -> int:
    svc = _web_service(args)
    if args.cancel:
        svc.job(args.cancel).cancel()
        print(f"azml-nb batch: job {args.cancel} cancelled", file=sys.stderr)
        return 0
    if args.job:
        job = svc.job(args.job)
    else:
        if not args.input:
            raise SystemExit("azml-nb batch: give INPUT.csv, or --job ID to re-attach")
        job = svc.submit_batch(args.input, global_parameters=_global_parameters(args.param) or None,
                               cleanup=args.cleanup)
        if args.no_wait:
            print(job.id)
            return 0
        print(f"azml-nb batch: job {job.id} started", file=sys.stderr)
    try:
        result = job.result(timeout=args.timeout, progress=not args.no_progress)
    except KeyboardInterrupt:
        print(f"azml-nb batch: stopped waiting; job {job.id} keeps running. Re-attach with "
              f"`azml-nb batch --job {job.id} -o OUTPUT.csv`, cancel with `azml-nb batch --cancel {job.id}`",
              file=sys.stderr)
        return 130
    except TimeoutError as err:
        print(f"azml-nb batch: {err}; re-attach with `azml-nb batch --job {job.id}`", file=sys.stderr)
        return 2
    _write_frames(result, args.output)
    return 0


_COMMANDS: list[tuple[str, Callable[[argparse._SubParsersAction], None]]] = []
_COMMANDS.append(("apim", _apim_parser))
_COMMANDS.append(("hash", _hash_parser))
_COMMANDS.append(("lab", _lab_parser))
_COMMANDS.append(("serve", _serve_parser))
_COMMANDS.append(("score", _score_parser))
_COMMANDS.append(("batch", _batch_parser))


# --- entry point -------------------------------------------------------------------------

def _file_error(err: OSError) -> str:
    """'missing.csv: No such file or directory' rather than "[Errno 2] No such file ..."."""
    if err.filename is None or not err.strerror:
        return str(err)
    return f"{err.filename}: {err.strerror}"


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
    # Only azml_nb's own loggers go to DEBUG with -v: urllib3 and azure-core log request
    # URLs at DEBUG, and a blob URL carries its SAS token.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    log.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        return int(args.func(args) or 0)
    except AzmlError as err:
        print(f"azml-nb {args.command}: {err}", file=sys.stderr)
        return 1
    except OSError as err:                        # a missing, unreadable or unwritable file
        print(f"azml-nb {args.command}: {_file_error(err)}", file=sys.stderr)
        return 2
    except ValueError as err:                     # pandas: an empty or malformed CSV file
        import pandas as pd

        if not isinstance(err, (pd.errors.EmptyDataError, pd.errors.ParserError)):
            raise
        print(f"azml-nb {args.command}: cannot read the CSV input: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"azml-nb {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
