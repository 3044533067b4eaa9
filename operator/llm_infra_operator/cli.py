"""`llm-infra operator`: run the operator (registered as an `llm-infra` plug-in)."""

from __future__ import annotations

import argparse

from llm_infra.config import load_settings
from llm_infra_operator.settings import OperatorSettings


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser(
        "operator",
        help="run the Kubernetes operator",
        description="Reconcile VectorCollections, ConfigSources, AuditSinks and Routes until"
        " stopped. Settings come from LLM_INFRA_OPERATOR_* variables; flags override them."
        " Credentials: the pod's service account, else $KUBECONFIG.",
    )
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
    settings = load_settings(OperatorSettings, init=given)
    from llm_infra_operator.main import run  # here: kopf loads only for this command

    run(settings)
    return 0
