"""How fast the operator brings many resources to Ready, and what it costs.

Starts the real parts the tests use (etcd + kube-apiserver, nats-server, the
control plane `llm-infra up`, and `llm-infra operator` as its RBAC-limited
user), applies N resources of the four kinds in equal shares in one
`kubectl apply`, and reports:

1. seconds from the apply until every resource is Ready (target: 200 in < 60 s);
2. the operator's peak RSS (VmHWM; target < 200 MB), measured in a virtualenv
   holding only `llm-infra[operator]`, as its container does (kopf imports the
   Kubernetes client libraries of the test environment when it finds them, which
   alone adds ~100 MB);
3. reconciles per second over that time, and the reconciles per resource
   (1.0 would mean no reconcile was wasted).

Markdown to stdout (and ``--markdown``), every number plus machine and date to
``--json``. ``--quick`` is the CI size (20 resources).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import _machine  # bench/_machine.py, next to this script
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the real servers of tests/servers

from tests.servers.controlplane import ControlPlaneProcess  # noqa: E402
from tests.servers.kube import KubeServer  # noqa: E402
from tests.servers.nats import NatsServer  # noqa: E402
from tests.servers.operator import OperatorProcess, grant_namespace, install_rbac  # noqa: E402

from llm_infra.api import v1alpha1  # noqa: E402

NAMESPACE = "bench"
API = "infra.llmdevops.io/v1alpha1"
PLURALS = ",".join(kind.crd.plural for kind in v1alpha1.KINDS)


def _log(message: str) -> None:
    print(f"[operator-bench] {message}", file=sys.stderr, flush=True)


def manifests(count: int) -> list[dict[str, Any]]:
    """`count` small resources, the four kinds in turn, each ready without outside services."""
    makers = (
        lambda i: {
            "kind": "VectorCollection",
            "spec": {"backend": {"embedded": {}}, "vectors": {"size": 8}},
        },
        lambda i: {
            "kind": "ConfigSource",
            "spec": {"layers": [{"name": "defaults", "inline": {"app": {"replica": i}}}]},
        },
        lambda i: {
            "kind": "AuditSink",
            "spec": {
                "stream": {"maxMsgs": 1000},
                "sinks": [{"name": "file", "file": {"path": f"/var/log/audit-{i}.jsonl"}}],
            },
        },
        lambda i: {
            "kind": "Route",
            "spec": {
                "targets": [
                    {"name": "a", "provider": "vllm", "endpoint": "http://a:8000/v1",
                     "model": "m", "weight": 3},
                    {"name": "b", "provider": "vllm", "endpoint": "http://b:8000/v1",
                     "model": "m", "weight": 1},
                ]
            },
        },
    )  # fmt: skip
    return [
        {"apiVersion": API, "metadata": {"name": f"r{i:04d}"}, **makers[i % 4](i)}
        for i in range(count)
    ]


def operator_python(work: Path) -> Path:
    """A virtualenv with `llm-infra[operator]` from the lock file (uv: seconds when cached)."""
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    venv = work / "operator-venv"
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [uv, "pip", "install", "-q", "--python", str(python),
         "-c", str(REPO / "requirements.lock"), "-e", f"{REPO}[operator]"],
        check=True,
    )  # fmt: skip
    return python


def ready_count(kube: KubeServer) -> tuple[int, int]:
    listed = json.loads(kube.kubectl("get", PLURALS, "-n", NAMESPACE, "-o", "json").stdout)
    ready = sum(
        1
        for item in listed["items"]
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in item.get("status", {}).get("conditions", [])
        )
    )
    return ready, len(listed["items"])


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc status")


def run(args: argparse.Namespace) -> dict[str, Any]:
    count = 20 if args.quick else args.resources
    with tempfile.TemporaryDirectory(prefix="operator-bench-") as tmp:
        work = Path(tmp)
        for part in ("kube", "nats", "cp", "operator"):
            (work / part).mkdir()
        _log("creating the operator's virtualenv")
        python = operator_python(work)
        _log("starting kube-apiserver, nats-server and the control plane")
        with (
            KubeServer(work / "kube") as kube,
            NatsServer(work / "nats") as nats,
            ControlPlaneProcess(work / "cp") as control_plane,
        ):
            kube.install_crds(
                REPO / "crds", *(f"crd/{kind.crd.crd_name}" for kind in v1alpha1.KINDS)
            )
            kubeconfig = install_rbac(kube)
            kube.kubectl("create", "namespace", NAMESPACE)
            grant_namespace(kube, NAMESPACE)
            settings = {
                "LLM_INFRA_OPERATOR_NATS_URL": nats.url,
                "LLM_INFRA_OPERATOR_CONTROL_PLANE_URL": control_plane.url,
                "LLM_INFRA_OPERATOR_CONTROL_PLANE_TOKEN": control_plane.token or "",
                "LLM_INFRA_OPERATOR_LOG_FORMAT": "json",
            }
            with OperatorProcess(
                work / "operator", kubeconfig, [NAMESPACE], settings, python
            ) as operator:
                assert operator.pid is not None
                idle_rss = peak_rss_mib(operator.pid)
                path = work / "resources.yaml"
                path.write_text(yaml.safe_dump_all(manifests(count), sort_keys=False))
                _log(f"applying {count} resources")
                started = time.perf_counter()
                kube.kubectl("apply", "-n", NAMESPACE, "-f", str(path))
                applied = time.perf_counter() - started
                ready, total = 0, 0
                deadline = started + args.timeout
                while time.perf_counter() < deadline:
                    ready, total = ready_count(kube)
                    if ready == count:
                        break
                    time.sleep(0.25)
                elapsed = time.perf_counter() - started
                done = operator.metric("llm_infra_operator_reconciles_total{")
                peak = peak_rss_mib(operator.pid)
    _log(f"{ready}/{count} Ready after {elapsed:.1f} s")
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": _machine.machine_info(["kopf", "kubernetes-asyncio", "llm-infra"]),
        "resources": count,
        "ready": ready,
        "seen": total,
        "apply_s": round(applied, 3),
        "all_ready_s": round(elapsed, 3) if ready == count else None,
        "reconciles": done,
        "reconciles_per_s": round(done / elapsed, 2),
        "reconciles_per_resource": round(done / count, 2),
        "operator_idle_rss_mib": round(idle_rss, 1),
        "operator_peak_rss_mib": round(peak, 1),
    }


def markdown(report: dict[str, Any]) -> str:
    ready_s = report["all_ready_s"]
    all_ready = f"{ready_s:.1f} s" if ready_s is not None else "NOT all ready"
    lines = [
        f"operator bench, {report['date']}, {report['resources']} resources (4 kinds)",
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| all-ready | {all_ready} ({report['ready']}/{report['resources']}) | 200 in < 60 s |",
        f"| peak-rss | {report['operator_peak_rss_mib']} MiB"
        f" (idle {report['operator_idle_rss_mib']}) | < 200 MB |",
        f"| reconciles | {report['reconciles_per_s']}/s, {report['reconciles_per_resource']}"
        " per resource | |",
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="CI size: 20 resources")
    parser.add_argument("--resources", type=int, default=200, help="resources to create")
    parser.add_argument("--timeout", type=float, default=300.0, help="give up after (s)")
    parser.add_argument("--json", type=Path, help="write every number here")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args)
    _machine.write_report(report, markdown(report), markdown=args.markdown, json_path=args.json)
    return 0 if report["all_ready_s"] is not None else 1


if __name__ == "__main__":
    sys.exit(main())
