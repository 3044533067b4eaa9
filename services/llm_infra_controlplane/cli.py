"""`llm-infra up`: run the control plane on this machine (registered as an `llm-infra` plug-in)."""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn

from llm_infra_controlplane.main import create_app
from llm_infra_controlplane.settings import Settings


def register_up(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    defaults = Settings()
    parser = subcommands.add_parser(
        "up",
        help="run the control plane on this machine",
        description="Run the llm-infra control plane in the foreground until Ctrl-C.",
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
    parser.set_defaults(handler=up)


def up(args: argparse.Namespace) -> int:
    settings = Settings(
        host=args.host, port=args.port, log_level=args.log_level, data_dir=args.data
    )
    app = create_app(settings)
    # uvicorn handles SIGINT/SIGTERM: in-flight requests finish, lifespan shutdown runs.
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level)
    return 0
