"""`llm-infra operator`: run the operator (registered as an `llm-infra` plug-in)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from llm_infra.config import load_settings
from llm_infra_operator.settings import OperatorSettings

SETTINGS_FILE_ENV = "LLM_INFRA_OPERATOR_SETTINGS_FILE"


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser(
        "operator",
        help="run the Kubernetes operator",
        description="Reconcile VectorCollections, ConfigSources, AuditSinks and Routes until"
        " stopped. Settings: flags > LLM_INFRA_OPERATOR_* variables > the settings file >"
        " defaults. Credentials: --kubeconfig, else $KUBECONFIG, else the pod's service"
        " account, else ~/.kube/config (exec credential plugins run).",
    )
    parser.add_argument(
        "--settings",
        metavar="FILE",
        type=Path,
        help="a settings file (YAML, JSON or TOML); also $LLM_INFRA_OPERATOR_SETTINGS_FILE",
    )
    parser.add_argument("--kubeconfig", type=Path, help="the kubeconfig to log in with")
    parser.add_argument("--context", dest="kube_context", help="the kubeconfig context")
    parser.add_argument(
        "-n",
        "--namespace",
        action="append",
        dest="namespaces",
        metavar="NS",
        help="namespace or glob to watch (repeatable); all namespaces when none",
    )
    parser.add_argument("--health-host", help="address of /healthz and /metrics")
    parser.add_argument("--health-port", type=int, help="port of /healthz")
    parser.add_argument("--metrics-port", type=int, help="port of /metrics (0: off)")
    parser.add_argument("--peering", help="kopf peering name, to run several replicas")
    parser.add_argument("--priority", type=int, help="this replica's priority in the peering")
    parser.add_argument("--nats-url", help="NATS with JetStream (audit, config events)")
    parser.add_argument("--control-plane-url", help="control plane (embedded collections)")
    parser.add_argument("--qdrant-url", help="default Qdrant server")
    parser.add_argument("--log-format", choices=("json", "plain", "full"))
    parser.set_defaults(handler=operator)


def operator(args: argparse.Namespace) -> int:
    given = {
        name: value
        for name in (
            "kubeconfig",
            "kube_context",
            "namespaces",
            "health_host",
            "health_port",
            "metrics_port",
            "peering",
            "priority",
            "nats_url",
            "control_plane_url",
            "qdrant_url",
            "log_format",
        )
        if (value := getattr(args, name)) is not None
    }
    file = args.settings or (Path(p) if (p := os.environ.get(SETTINGS_FILE_ENV)) else None)
    settings = load_settings(OperatorSettings, files=[file] if file else (), init=given)
    from llm_infra_operator.main import run  # here: kopf loads only for this command

    run(settings)
    return 0
