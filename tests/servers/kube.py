"""A real Kubernetes API server for tests: etcd + kube-apiserver, envtest style.

There is no kubelet, scheduler or controller-manager, so Pods never run,
namespaces stay Terminating once deleted and nothing garbage-collects owned
objects: tests use fresh namespaces and read what the API server stored.

Authentication is by client certificate from a CA made here (as envtest does);
authorization is RBAC. `kubeconfig` is an admin config (group system:masters)
that kubectl, helm and `llm_infra.kube` all read; `kubeconfig_for()` mints
configs for other users, to test RBAC as they see it, and `exec_kubeconfig_for()`
configs whose user is an exec credential plugin (a small script answering
ExecCredentials with client certificates, as cloud plugins answer tokens).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import ssl
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests import support
from tests.servers import binaries
from tests.servers._process import ManagedServer, ServerProcess, free_port

ADMIN_USER = "llm-infra-test-admin"
_VALIDITY = datetime.timedelta(days=2)


class KubectlError(subprocess.CalledProcessError):
    """A failed kubectl call that says why: its stderr is in the message, not only an attribute."""

    def __str__(self) -> str:
        return f"{super().__str__()}\n{(self.stderr or '').strip()}"


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


class _CertificateAuthority:
    """A throwaway CA for one test run. EC P-256 keys: fast to generate."""

    def __init__(self, common_name: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )

    def issue(
        self,
        common_name: str,
        *,
        organizations: tuple[str, ...] = (),
        server_ips: tuple[str, ...] = (),
        server_names: tuple[str, ...] = (),
        validity: datetime.timedelta = _VALIDITY,
    ) -> tuple[bytes, bytes]:
        """Return (cert PEM, key PEM): a serving cert if IPs/names are given, else a client cert."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        subject += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
        is_server = bool(server_ips or server_names)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if is_server else ExtendedKeyUsageOID.CLIENT_AUTH
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(subject))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + validity)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if is_server:
            alt_names: list[x509.GeneralName] = [
                x509.IPAddress(ipaddress.ip_address(ip)) for ip in server_ips
            ]
            alt_names += [x509.DNSName(name) for name in server_names]
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return _pem_cert(cert), _pem_key(key)


class KubeServer(ManagedServer):
    """etcd and kube-apiserver on free ports; stop() ends both."""

    name = "kube-apiserver"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.pki = workdir / "pki"
        self.pki.mkdir(parents=True, exist_ok=True)
        self.etcd_port, self.etcd_peer_port, self.port = free_port(), free_port(), free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self._ca = _CertificateAuthority("llm-infra-test-ca")
        self.ca_file = self._write("ca.crt", _pem_cert(self._ca.cert))
        self.kubeconfig = self.kubeconfig_for(ADMIN_USER, groups=("system:masters",))
        self._etcd = self._etcd_process()
        self._apiserver = self._apiserver_process()

    def _write(self, name: str, data: bytes) -> Path:
        path = self.pki / name
        path.write_bytes(data)
        path.chmod(0o600)
        return path

    def _etcd_process(self) -> ServerProcess:
        client = f"http://127.0.0.1:{self.etcd_port}"
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        argv: list[str | os.PathLike[str]] = [
            binaries.kube_tool("etcd"),
            "--name=default",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            "--unsafe-no-fsync",  # a test database: durability across power loss is not needed
            "--log-level=warn",
        ]
        return ServerProcess("etcd", argv, log_path=self.workdir / "etcd.log")

    def _apiserver_process(self) -> ServerProcess:
        serving_cert, serving_key = self._ca.issue(
            "kube-apiserver",
            server_ips=("127.0.0.1",),
            server_names=("localhost", "kubernetes", "kubernetes.default.svc"),
        )
        sa_key = ec.generate_private_key(ec.SECP256R1())
        sa_public = sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        argv: list[str | os.PathLike[str]] = [
            binaries.kube_tool("kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1",
            # No default route on a sandboxed machine: without this the server
            # exits "Unable to find suitable network address".
            "--advertise-address=127.0.0.1",
            # 1.37 refuses a loopback advertise address for the `kubernetes`
            # Service endpoints; nothing in tests dials that Service.
            "--endpoint-reconciler-type=none",
            f"--secure-port={self.port}",
            f"--cert-dir={self.pki}",
            f"--tls-cert-file={self._write('apiserver.crt', serving_cert)}",
            f"--tls-private-key-file={self._write('apiserver.key', serving_key)}",
            f"--client-ca-file={self.ca_file}",
            "--authorization-mode=RBAC",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            # No controller-manager creates default ServiceAccounts, so the
            # admission plugin that requires them would reject every Pod.
            "--disable-admission-plugins=ServiceAccount",
            f"--service-account-issuer={self.url}",
            f"--service-account-key-file={self._write('sa.pub', sa_public)}",
            f"--service-account-signing-key-file={self._write('sa.key', _pem_key(sa_key))}",
            "--profiling=false",
        ]
        return ServerProcess(self.name, argv, log_path=self.workdir / "kube-apiserver.log")

    def kubeconfig_for(self, user: str, *, groups: tuple[str, ...] = ()) -> Path:
        """Write a kubeconfig that authenticates as `user` in `groups` by client certificate."""
        cert, key = self._ca.issue(user, organizations=groups)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "test",
                    "cluster": {"server": self.url, "certificate-authority": str(self.ca_file)},
                }
            ],
            "users": [
                {
                    "name": user,
                    "user": {
                        "client-certificate": str(self._write(f"{user}.crt", cert)),
                        "client-key": str(self._write(f"{user}.key", key)),
                    },
                }
            ],
            "contexts": [{"name": user, "context": {"cluster": "test", "user": user}}],
            "current-context": user,
        }
        path = self.workdir / f"{user}.kubeconfig"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)
        return path

    def exec_credential(
        self, user: str, *, groups: tuple[str, ...] = (), trusted: bool = True
    ) -> dict[str, Any]:
        """An ExecCredential answering a client certificate for `user`.

        Untrusted: signed by a CA the API server does not know, so it answers 401.
        """
        ca = self._ca if trusted else _CertificateAuthority("a-ca-nobody-trusts")
        cert, key = ca.issue(user, organizations=groups)
        expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
        return {
            "apiVersion": "client.authentication.k8s.io/v1",
            "kind": "ExecCredential",
            "status": {
                "clientCertificateData": cert.decode(),
                "clientKeyData": key.decode(),
                "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
        }

    def exec_kubeconfig_for(
        self, user: str, *, groups: tuple[str, ...] = (), answers: Sequence[dict[str, Any]] = ()
    ) -> ExecPlugin:
        """A kubeconfig whose user is an exec plugin answering `answers` in turn (then the last).

        Default: one trusted certificate for `user`. The plugin records each call.
        """
        return ExecPlugin(self, user, answers or [self.exec_credential(user, groups=groups)])

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file)
        context.load_cert_chain(self.pki / f"{ADMIN_USER}.crt", self.pki / f"{ADMIN_USER}.key")
        return context

    def start(self) -> KubeServer:
        etcd_health = f"http://127.0.0.1:{self.etcd_port}/health"
        self._etcd.launch(
            lambda: httpx.get(etcd_health, timeout=1.0).json().get("health") == "true",
            what="etcd healthy",
            timeout=30,
        )
        try:
            with httpx.Client(verify=self._ssl_context(), timeout=2.0) as http:
                # /readyz turns 200 only after the RBAC bootstrap roles exist.
                self._apiserver.launch(
                    lambda: http.get(f"{self.url}/readyz").status_code == 200,
                    what="/readyz",
                    timeout=90,
                )
        except BaseException:
            self._etcd.stop()
            raise
        return self

    def stop(self) -> None:
        self._apiserver.stop()
        self._etcd.stop()

    def kubectl(
        self, *args: str, kubeconfig: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this server; raises KubectlError (with its stderr) on failure."""
        argv: list[str | os.PathLike[str]] = [
            os.fspath(binaries.kube_tool("kubectl")),
            f"--kubeconfig={kubeconfig or self.kubeconfig}",
            # Discovery is cached by host:port; free ports come back, so a shared cache could
            # describe an earlier server's resources. Each server gets its own.
            f"--cache-dir={self.workdir / 'kubectl-cache'}",
            *args,
        ]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if done.returncode:
            raise KubectlError(done.returncode, argv, done.stdout, done.stderr)
        return done

    def install_crds(self, path: Path, *names: str) -> None:
        """Apply the CRDs at `path` and wait until the API server serves `names` (crd/<name>)."""
        self.kubectl("apply", "--server-side", "-f", str(path))
        # Polled, not `kubectl wait`: right after the apply a CRD may have no status.conditions
        # yet, and kubectl's wait then fails ("accessor error: <nil>") instead of waiting.
        support.wait_for(f"{', '.join(names)} Established", lambda: self._established(names))

    def _established(self, names: Sequence[str]) -> bool:
        listed = json.loads(self.kubectl("get", *names, "-o", "json").stdout)
        items = listed.get("items", [listed])
        return len(items) == len(names) and all(
            any(
                condition.get("type") == "Established" and condition.get("status") == "True"
                for condition in (item.get("status") or {}).get("conditions") or []
            )
            for item in items
        )

    def log_tail(self) -> str:
        return f"{self._etcd.log_tail(30)}\n{self._apiserver.log_tail()}"


_PLUGIN = """\
import json, os, pathlib, sys
here = pathlib.Path(__file__).parent
calls = here / "calls.jsonl"
count = len(calls.read_text().splitlines()) if calls.exists() else 0
with calls.open("a") as log:
    log.write(json.dumps({"info": os.environ.get("KUBERNETES_EXEC_INFO")}) + "\\n")
answers = sorted(here.glob("answer-*.json"))
sys.stdout.write(answers[min(count, len(answers) - 1)].read_text())
"""


class ExecPlugin:
    """An exec credential plugin of the test server, and the kubeconfig that runs it."""

    def __init__(self, kube: KubeServer, user: str, answers: Sequence[dict[str, Any]]) -> None:
        self.dir = kube.workdir / f"exec-{user}-{os.urandom(4).hex()}"
        self.dir.mkdir()
        self.dir.chmod(0o700)
        for index, answer in enumerate(answers):
            (self.dir / f"answer-{index:03d}.json").write_text(json.dumps(answer))
        script = self.dir / "plugin.py"
        script.write_text(_PLUGIN)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "test",
                    "cluster": {"server": kube.url, "certificate-authority": str(kube.ca_file)},
                }
            ],
            "users": [
                {
                    "name": user,
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1",
                            "command": sys.executable,
                            "args": [str(script)],
                            "interactiveMode": "Never",
                            "provideClusterInfo": True,
                        }
                    },
                }
            ],
            "contexts": [{"name": user, "context": {"cluster": "test", "user": user}}],
            "current-context": user,
        }
        self.kubeconfig = self.dir / "kubeconfig"
        self.kubeconfig.write_text(yaml.safe_dump(config, sort_keys=False))

    @property
    def calls(self) -> list[dict[str, Any]]:
        """What each run of the plugin was given (KUBERNETES_EXEC_INFO), in order."""
        log = self.dir / "calls.jsonl"
        lines = log.read_text().splitlines() if log.exists() else []
        return [json.loads(line) for line in lines]
