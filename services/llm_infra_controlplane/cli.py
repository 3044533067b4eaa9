"""`llm-infra up`: run the control plane on this machine (registered as an `llm-infra` plug-in).

Standalone mode: unless `--nats-url` names a running NATS, a nats-server child
process starts first (store in `<data>/nats`) and stops after the app; the
resource YAML of `--resources` (default: ./examples when it exists) is applied
and followed. `--no-resources` serves only what clients and the operator
create: the control plane's role in a cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from llm_infra_controlplane import security
from llm_infra_controlplane.config_store import ConfigStore
from llm_infra_controlplane.main import create_app
from llm_infra_controlplane.nats_child import NatsChild
from llm_infra_controlplane.settings import Settings

DEFAULT_RESOURCES = Path("examples")
GRACEFUL_SHUTDOWN_SECONDS = 10
"""How long in-flight requests may take to finish after Ctrl-C."""


def register_up(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    defaults = Settings()
    parser = subcommands.add_parser(
        "up",
        help="run the control plane on this machine",
        description="Run the llm-infra control plane in the foreground until Ctrl-C: the API,"
        " the embedded Qdrant core, a nats-server child process, and the resources of a folder.",
    )
    parser.add_argument(
        "--host", default=defaults.host, help="address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=defaults.port, help="port (default: %(default)s)"
    )
    parser.add_argument("--log-level", default=defaults.log_level, help="(default: %(default)s)")
    parser.add_argument(
        "--data",
        metavar="DIR",
        type=Path,
        default=defaults.data_dir,
        help="where embedded data lives; also $LLM_INFRA_DATA_DIR (default: %(default)s)",
    )
    resources = parser.add_mutually_exclusive_group()
    resources.add_argument(
        "--resources",
        metavar="DIR",
        type=Path,
        help="resource YAML to apply and follow (default: ./examples when it exists)",
    )
    resources.add_argument(
        "--no-resources", action="store_true", help="apply no folder (the in-cluster role)"
    )
    parser.add_argument(
        "--nats-url", help="a running NATS with JetStream, instead of starting nats-server"
    )
    parser.add_argument(
        "--rotate-admin-key",
        action="store_true",
        help="replace the admin API key (printed once) before starting; the old one stops working",
    )
    parser.set_defaults(handler=up)


def up(args: argparse.Namespace) -> int:
    resources: Path | None = args.resources
    if resources is None and not args.no_resources and DEFAULT_RESOURCES.is_dir():
        resources = DEFAULT_RESOURCES
    args.data.mkdir(parents=True, exist_ok=True)
    if args.rotate_admin_key:
        asyncio.run(security.rotate_admin_key(args.data))
    with contextlib.ExitStack() as stack:
        nats_url = args.nats_url
        if nats_url is None:
            child = stack.enter_context(NatsChild(args.data / "nats", args.data / "nats.log"))
            nats_url = child.url
            _say(f"nats-server (JetStream) on {nats_url}, store in {args.data / 'nats'}")
        settings = Settings(
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            data_dir=args.data,
            nats_url=nats_url,
            resources_dir=resources,
        )
        _say(f"data in {settings.data_dir}")
        _say(f"resources from {resources}" if resources else "no resource folder")
        app = create_app(settings)
        # uvicorn handles SIGINT/SIGTERM: in-flight requests finish, lifespan shutdown runs,
        # then it raises the signal again; ours turn it into a normal exit, so the ExitStack
        # stops the nats-server child after the app that used it, and the exit code is 0.
        signal.signal(signal.SIGTERM, _exit_normally)
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
        with contextlib.suppress(KeyboardInterrupt):
            _Server(config, app).run()
        _say("stopped")
    return 0


class _Server(uvicorn.Server):
    """uvicorn that ends the config watch streams as soon as shutdown starts.

    uvicorn waits for open responses before it runs the lifespan shutdown, and
    an SSE watch never ends by itself: closing the store first lets them end.
    """

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        configs: ConfigStore | None = getattr(self.app.state, "configs", None)
        if configs is not None:
            configs.close()
        await super().shutdown(sockets)


def _exit_normally(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _say(line: str) -> None:
    print(f"llm-infra up: {line}", flush=True)
