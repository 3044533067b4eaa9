"""The `llm-infra` command: a thin dispatcher over subcommands registered as plug-ins.

Subcommands live with the code they run (`up` in the control plane, later the
operator's in the operator) and register through the `llm_infra.commands`
entry-point group, so this module imports neither: the SDK stays the bottom layer.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib import metadata

import llm_infra

ENTRY_POINT_GROUP = "llm_infra.commands"

# A registrar adds one subparser and sets `handler` (args -> exit code) on it.
Registrar = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llm-infra",
        description="Vector collections, layered config, audit and model routing for LLM apps.",
    )
    parser.add_argument("--version", action="version", version=f"llm-infra {llm_infra.__version__}")
    subcommands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for entry_point in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            register: Registrar = entry_point.load()
        except ImportError as exc:
            # The command's extra is not installed: say which, keep the others working.
            needs = (
                f"llm-infra[{','.join(entry_point.extras)}]" if entry_point.extras else "its deps"
            )
            missing = subcommands.add_parser(entry_point.name, help=f"(needs {needs})")
            missing.set_defaults(unavailable=f"`{entry_point.name}` needs {needs}: {exc}")
            continue
        register(subcommands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if unavailable := getattr(args, "unavailable", None):
        parser.error(unavailable)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
