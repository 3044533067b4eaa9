"""`llm-infra up` and `llm-infra serve`: run the control plane (registered as `llm-infra` plug-ins).

`up` is the newcomer's command, on one machine: unless a NATS is configured, a
nats-server child process starts first (store in `<data>/nats`) and stops after
the app; the resource YAML of `--resources` (default: ./examples when it exists)
is applied and followed; an admin API key is made and printed once.

`serve` is the in-cluster entry point the chart runs: no child process, no
admin key, no folder; everything comes from the settings (`settings.load`:
flags > LLM_INFRA_* variables > the mounted settings file > defaults), and it
refuses to start, naming each missing setting and how to set it, rather than
serve a half-configured API.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

import uvicorn

from llm_infra import errors
from llm_infra_controlplane import settings as settings_module
from llm_infra_controlplane.access import admin_key
from llm_infra_controlplane.main import create_app
from llm_infra_controlplane.settings import Settings
from llm_infra_controlplane.standalone import data_dir
from llm_infra_controlplane.standalone.nats_child import NatsChild
from llm_infra_controlplane.web import server

DEFAULT_RESOURCES = Path("examples")
GRACEFUL_SHUTDOWN_SECONDS = 10
"""How long in-flight requests may take to finish after Ctrl-C or SIGTERM."""
EXIT_CONFIG = 2
KEEP_ALIVE_SECONDS = 5
"""How long an idle kept-alive connection stays open (uvicorn's default, stated)."""


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--settings",
        metavar="FILE",
        type=Path,
        help="a settings file (YAML, JSON or TOML); also $LLM_INFRA_SETTINGS_FILE",
    )
    parser.add_argument("--host", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: 8080)")
    parser.add_argument("--log-level", help="critical, error, warning, info or debug")


def register_up(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser(
        "up",
        help="run the control plane on this machine",
        description="Run the llm-infra control plane in the foreground until Ctrl-C: the API,"
        " the embedded Qdrant core, a nats-server child process, and the resources of a folder.",
    )
    _common(parser)
    parser.add_argument(
        "--data",
        metavar="DIR",
        type=Path,
        help="where embedded data lives; also $LLM_INFRA_DATA_DIR (default: ~/.local/share/"
        "llm-infra)",
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


def register_serve(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser(
        "serve",
        help="run the control plane in a cluster (the chart's entry point)",
        description="Serve the llm-infra control plane as configured by LLM_INFRA_* variables and"
        " a settings file, until SIGTERM. Needs NATS (nats_url) and API keys or JWT settings;"
        " with kube_feeds it serves what the operator writes.",
    )
    _common(parser)
    parser.set_defaults(handler=serve)


def _load(args: argparse.Namespace, **flags: Any) -> Settings:
    given = {"host": args.host, "port": args.port, "log_level": args.log_level, **flags}
    return settings_module.load(flags=given, settings_file=args.settings)


def up(args: argparse.Namespace) -> int:
    try:
        settings = _load(args, data_dir=args.data, nats_url=args.nats_url)
    except errors.ConfigError as exc:
        return _refuse("up", [exc.message])
    resources: Path | None = args.resources or settings.resources_dir
    if resources is None and not args.no_resources and DEFAULT_RESOURCES.is_dir():
        resources = DEFAULT_RESOURCES
    os.umask(data_dir.PRIVATE_UMASK)  # what we write is ours alone (docs/security.md)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(data_dir.claim(settings.data_dir))
        except errors.ConfigError as exc:
            return _refuse("up", [exc.message])
        if args.rotate_admin_key:
            asyncio.run(admin_key.rotate_admin_key(settings.data_dir))
        if settings.nats_url is None:
            nats = settings.data_dir / "nats"
            child = stack.enter_context(NatsChild(nats, settings.data_dir / "nats.log"))
            settings = settings.model_copy(
                update={"nats_url": child.url, "nats_token": child.token}
            )
            _say(f"nats-server (JetStream) on {child.url}, store in {nats}, token required")
        settings = settings.model_copy(update={"resources_dir": resources})
        _say(f"data in {settings.data_dir}")
        _say(f"resources from {resources}" if resources else "no resource folder")
        _run(settings)
        _say("stopped")
    return 0


def serve(args: argparse.Namespace) -> int:
    try:
        # In a cluster keys come from the settings, and the folder is the API server.
        settings = _load(args, standalone_admin_key=False)
    except errors.ConfigError as exc:
        return _refuse("serve", [exc.message])
    settings = settings.model_copy(update={"resources_dir": None})
    if problems := settings.serve_problems():
        return _refuse("serve", problems)
    os.umask(data_dir.PRIVATE_UMASK)
    data_dir.make_private(settings.data_dir)  # in a pod: the volume's mount point
    _run(settings)
    return 0


def server_config(app: Any, settings: Settings) -> uvicorn.Config:
    """uvicorn as the control plane runs it: httptools with the limits of `web.server`."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        http=server.guarded_protocol(settings.limits),
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        ws="none",
    )


def _run(settings: Settings) -> None:
    app = create_app(settings)
    # uvicorn handles SIGINT/SIGTERM: in-flight requests finish (sse-starlette ends the watch
    # streams), lifespan shutdown runs, then it raises the signal again; ours turn it into a
    # normal exit, so an ExitStack stops a nats-server child after the app that used it.
    signal.signal(signal.SIGTERM, _exit_normally)
    server.raise_open_files_limit()
    config = server_config(app, settings)
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run()


def _refuse(command: str, problems: list[str]) -> int:
    for problem in problems:
        print(f"llm-infra {command}: cannot start: {problem}", file=sys.stderr, flush=True)
    return EXIT_CONFIG


def _exit_normally(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _say(line: str) -> None:
    print(f"llm-infra up: {line}", flush=True)
