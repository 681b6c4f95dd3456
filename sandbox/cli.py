"""`vlm-sandbox`: run the local VLM Run API (`serve`), or the whole loop on loopback (`demo`)."""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from sandbox.errors import SandboxError
from sandbox.settings import SandboxConfig, load_config
from vlmhooks.cli_args import positive_int, positive_seconds
from vlmhooks.errors import VlmhooksError

__all__ = ["DEFAULT_DEMO_TIMEOUT_SECONDS", "DEFAULT_HOST", "DEFAULT_PORT", "build_parser", "main"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8100
DEFAULT_DEMO_TIMEOUT_SECONDS = 60.0


def _cmd_serve(args: argparse.Namespace, config: SandboxConfig) -> int:
    import uvicorn

    from sandbox.app import create_sandbox_app

    # Bind here, so "address in use" is one clear line instead of a uvicorn log and exit 1.
    sock = _listen(args.host, args.port)
    server = uvicorn.Server(
        uvicorn.Config(
            create_sandbox_app(config),
            log_level=args.log_level,
            lifespan="on",
            access_log=args.access_log,
        )
    )
    print(f"vlm-sandbox: API at http://{_url_host(args.host)}:{args.port}/v1", file=sys.stderr)
    server.run(sockets=[sock])
    return 0 if server.started else 1


def _cmd_demo(args: argparse.Namespace, config: SandboxConfig) -> int:
    # Imported here: `serve` needs neither the receiver nor the submitter.
    from sandbox.demo import DemoOptions, run_demo

    options = DemoOptions(
        database=args.database,
        faults=args.faults,
        count=args.count,
        timeout=args.timeout,
        keep_running=args.keep_running,
    )
    return run_demo(options, config)


def _listen(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise SandboxError(f"cannot resolve host {host!r}: {exc.strerror}") from exc
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(socket.SOMAXCONN)
    except OSError as exc:
        sock.close()
        raise SandboxError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.set_inheritable(True)
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vlm-sandbox",
        description="A local VLM Run API that really delivers signed callbacks "
        "(configured by VLMHOOKS_SANDBOX_* variables).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the sandbox API (uvicorn)")
    serve.add_argument(
        "--host", default=DEFAULT_HOST, help=f"bind address (default {DEFAULT_HOST})"
    )
    serve.add_argument(
        "--port", type=_port, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})"
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn log level (default info)",
    )
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.set_defaults(handler=_cmd_serve)

    demo = commands.add_parser(
        "demo",
        help="run a sandbox and a receiver, submit the sample images, show what was stored",
        description="Start a sandbox API and a receiver on free loopback ports (SQLite), "
        "submit the shipped sample images with signed callback URLs, wait for the callbacks "
        "and print the stored predictions. Exits 0 when every one is stored completed.",
    )
    demo.add_argument(
        "--database",
        type=Path,
        metavar="PATH",
        help="SQLite file to store into and keep (default: a temporary one, removed on exit)",
    )
    demo.add_argument(
        "--faults",
        metavar="SPEC",
        help="sandbox faults, e.g. duplicate=3,out_of_order (see sandbox/faults.py; "
        "default: VLMHOOKS_SANDBOX_FAULTS, else none)",
    )
    demo.add_argument(
        "--count",
        type=positive_int,
        default=1,
        metavar="N",
        help="submit the samples N times (default 1)",
    )
    demo.add_argument(
        "--timeout",
        type=positive_seconds,
        default=DEFAULT_DEMO_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help="give up waiting for the callbacks after this long "
        f"(default {DEFAULT_DEMO_TIMEOUT_SECONDS:g})",
    )
    demo.add_argument(
        "--keep-running",
        action="store_true",
        help="keep both servers up after the table, until Ctrl-C",
    )
    demo.set_defaults(handler=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config()
        code: int = args.handler(args, config)
        return code
    except SandboxError as exc:
        print(f"vlm-sandbox: error: {exc}", file=sys.stderr)
        return 2
    except VlmhooksError as exc:  # configuration: the variable is named in the message
        print(f"vlm-sandbox: error: {exc.detail}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
