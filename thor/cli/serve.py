"""``thor serve``: an OpenAI-compatible server over a thor policy (loopback by default)."""

from __future__ import annotations

import argparse
import os
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a model over an OpenAI-compatible API (completions and chat)",
        description="Serve /v1/models, /v1/completions and /v1/chat/completions over a thor "
        "policy. Prints the base URL once the socket is bound ('--port 0' picks a free port).",
    )
    p.add_argument(
        "--model", default="embedded", help="'embedded', an HF model directory or a .gguf file"
    )
    p.add_argument(
        "--backend", default="hf", choices=["hf", "vllm"], help="policy backend that generates"
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (not loopback: --token required)"
    )
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--token",
        default=os.environ.get("THOR_SERVE_TOKEN"),
        help="require 'Authorization: Bearer TOKEN', the OpenAI client's api_key "
        "(default: $THOR_SERVE_TOKEN)",
    )
    p.add_argument(
        "--name", default=None, help="model name clients send (default: the --model value)"
    )
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    p.add_argument("--max-batch", type=int, default=64, help="most requests generated together")
    p.add_argument(
        "--batch-wait", type=float, default=0.01, help="seconds to wait for more requests"
    )
    p.add_argument(
        "--workers", type=int, default=256, help="connections served at once (more wait queued)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from thor.errors import ConfigError
    from thor.serving import ServerLimits, check_bind, check_port

    check_bind(args.host, args.token, "the model")
    check_port(args.port, args.host)
    if args.max_batch < 1 or args.batch_wait < 0 or args.workers < 1:
        raise ConfigError("--max-batch and --workers must be at least 1, --batch-wait at least 0")
    limits = ServerLimits(workers=args.workers)

    from thor.agents.backends import make_policy
    from thor.agents.backends.server import PolicyServer, serve_policy

    policy = make_policy(args.backend, model=args.model, dtype=args.dtype)
    name = args.name or args.model

    def ready(server: PolicyServer) -> None:
        print(f"thor serve: {server.url} (model {name!r}, backend {args.backend})", flush=True)

    try:
        serve_policy(
            policy,
            args.host,
            args.port,
            model_name=name,
            on_ready=ready,
            max_batch=args.max_batch,
            batch_wait_s=args.batch_wait,
            token=args.token,
            limits=limits,
        )
    except KeyboardInterrupt:
        print("thor serve: stopped", file=sys.stderr)
    finally:
        policy.close()
    return 0
