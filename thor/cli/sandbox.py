"""``thor sandbox serve`` (the SandboxFusion API on the local sandbox) and ``thor sandbox check``."""

from __future__ import annotations

import argparse
import os


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sandbox", help="serve the code sandbox over HTTP, or check its isolation")
    cmds = p.add_subparsers(dest="sandbox_command", metavar="SUBCOMMAND", required=True)

    serve = cmds.add_parser(
        "serve", help="serve the local sandbox behind the SandboxFusion API (/run_code)"
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to bind (not loopback: --token required)"
    )
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument(
        "--token",
        default=os.environ.get("THOR_SANDBOX_TOKEN"),
        help="require 'Authorization: Bearer TOKEN' (default: $THOR_SANDBOX_TOKEN)",
    )
    serve.add_argument("--max-concurrency", type=int, default=4, help="cells run at once")
    serve.add_argument(
        "--workers", type=int, default=64, help="connections served at once (more wait queued)"
    )
    serve.add_argument("--timeout", type=float, default=None, help="default per-cell timeout (s)")
    serve.add_argument(
        "--unsafe-no-isolation",
        action="store_true",
        help="run model code without isolation (refused when THOR_REQUIRE_ISOLATION=1)",
    )
    serve.set_defaults(func=run_serve)

    check = cmds.add_parser("check", help="say whether sandbox isolation works here, and why not")
    check.set_defaults(func=run_check)


def run_serve(args: argparse.Namespace) -> int:
    from thor.errors import ConfigError
    from thor.serving import ServerLimits, check_bind, check_port

    check_bind(args.host, args.token, "the sandbox")
    check_port(args.port, args.host)
    if args.max_concurrency < 1 or args.workers < 1:
        raise ConfigError("--max-concurrency and --workers must be at least 1")
    if args.timeout is not None and not args.timeout > 0:
        raise ConfigError(f"--timeout {args.timeout} must be a positive number of seconds")
    from thor.envs.sandbox.server import serve

    config: dict[str, object] = {"require_isolation": not args.unsafe_no_isolation}
    if args.timeout is not None:
        config["limits"] = {"timeout_s": args.timeout}
    try:
        serve(
            config,
            host=args.host,
            port=args.port,
            token=args.token,
            max_concurrency=args.max_concurrency,
            limits=ServerLimits(workers=args.workers),
        )
    except KeyboardInterrupt:
        return 0
    return 0


def run_check(args: argparse.Namespace) -> int:
    from thor.envs.sandbox.check import check_sandbox

    report = check_sandbox()
    print(report.render())
    return 0 if report.ok else 1
