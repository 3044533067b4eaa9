"""Where the API server is and how to log in to it: kubeconfig, exec plugins, the service account.

`load_credentials` looks, in this order, at the kubeconfig file(s) it is given,
`$KUBECONFIG` (several files joined with the path separator, merged as kubectl
merges them: the first file to name a cluster, user or context wins, and so
does the first `current-context`), the pod's service account, and
`~/.kube/config`. A user may name a client certificate or key (file or inline
data), a token, a token file (read again when the API server refuses it: the
kubelet rotates projected tokens), or an exec credential plugin, which is run
here (client.authentication.k8s.io v1 and v1beta1, `KUBERNETES_EXEC_INFO` set)
and may answer a token or a client certificate. `Credentials.login()` gets
fresh ones from the same place: the plugin runs again, files are read again.

lightkube, the client under `llm_infra.kube`, runs token-only exec plugins
and reads one kubeconfig file; merging and certificate-answering plugins are
the reason this module exists (docs/architecture.md, "Hand-written pieces").
Nothing here logs or shows a secret: tokens and keys stay out of the reprs.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from llm_infra import errors

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
DEFAULT_KUBECONFIG = Path("~/.kube/config")
EXEC_TIMEOUT = 60.0
"""Seconds an exec credential plugin may take (cloud CLIs fetch a token over the network)."""
EXEC_API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
EXPIRY_MARGIN = dt.timedelta(seconds=30)
"""Log in again this long before exec credentials expire, so no call races their end."""

_SECTIONS = {"clusters": "cluster", "users": "user", "contexts": "context"}


@dataclasses.dataclass(frozen=True)
class ExecPlugin:
    """A kubeconfig user's `exec` section: the command that prints an ExecCredential."""

    api_version: str
    command: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = dataclasses.field(default=(), repr=False)
    base_dir: Path | None = None
    """The kubeconfig's folder: a relative command with a slash is relative to it (as kubectl)."""
    provide_cluster_info: bool = False
    cluster: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False)
    interactive: str = "IfAvailable"
    install_hint: str | None = None
    user: str = ""
    """The kubeconfig user it logs in, for messages."""


@dataclasses.dataclass(frozen=True)
class Credentials:
    """One API server and one identity on it; secrets never in the repr.

    Certificate, key and CA data are PEM bytes. `token_file` wins over `token`
    (it is the rotating source); `plugin` is how `login()` gets new ones.
    """

    server: str
    ca_file: Path | None = None
    ca_data: bytes | None = dataclasses.field(default=None, repr=False)
    insecure: bool = False
    cert_file: Path | None = None
    key_file: Path | None = dataclasses.field(default=None, repr=False)
    cert_data: bytes | None = dataclasses.field(default=None, repr=False)
    key_data: bytes | None = dataclasses.field(default=None, repr=False)
    token: str | None = dataclasses.field(default=None, repr=False)
    token_file: Path | None = None
    namespace: str | None = None
    """The context's namespace, or the service account's."""
    expires_at: dt.datetime | None = None
    """When exec credentials stop working (their expirationTimestamp); None: unknown."""
    plugin: ExecPlugin | None = None
    source: str = ""
    """Where these came from, for messages: kubeconfig paths and user, or "service account"."""
    _origin: _Origin | None = dataclasses.field(default=None, repr=False, compare=False)

    def current_token(self) -> str | None:
        """The bearer token now: the token file's content when there is one."""
        if self.token_file is not None:
            try:
                return self.token_file.read_text(encoding="utf-8").strip() or self.token
            except OSError:
                return self.token  # mid-rotation: the last one read is still good for a while
        return self.token

    def expired(self, now: dt.datetime | None = None) -> bool:
        """Whether these are (about to be) past their expiration: log in again first."""
        if self.expires_at is None:
            return False
        return (now or dt.datetime.now(dt.UTC)) >= self.expires_at - EXPIRY_MARGIN

    async def login(self) -> Credentials:
        """Fresh credentials from the same source: the plugin run again, the files read again."""
        if self._origin is None:
            return self
        return await self._origin.load()


@dataclasses.dataclass(frozen=True)
class _Origin:
    """How `load_credentials` found the credentials, to find them again on `login()`."""

    kubeconfigs: tuple[Path, ...] | None
    context: str | None
    service_account_dir: Path | None
    environ: Mapping[str, str] = dataclasses.field(repr=False)

    async def load(self) -> Credentials:
        if self.kubeconfigs is not None:
            return await _from_kubeconfig(self.kubeconfigs, self.context, self.environ, self)
        assert self.service_account_dir is not None
        found = in_cluster(self.environ, self.service_account_dir)
        if found is None:
            raise errors.ConfigError(
                f"the service account in {self.service_account_dir} is gone: is this still the"
                " pod it started in?",
                key="serviceaccount",
            )
        return found


async def load_credentials(
    kubeconfig: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    *,
    context: str | None = None,
    environ: Mapping[str, str] | None = None,
    service_account_dir: Path = SERVICE_ACCOUNT_DIR,
) -> Credentials:
    """The credentials to use: `kubeconfig`, $KUBECONFIG, the service account, ~/.kube/config."""
    env = dict(os.environ if environ is None else environ)
    found = _locate(kubeconfig, env, service_account_dir)
    if isinstance(found, Credentials):
        return dataclasses.replace(found, _origin=_Origin(None, None, service_account_dir, env))
    return await _from_kubeconfig(found, context, env, _Origin(found, context, None, env))


def _locate(
    kubeconfig: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None,
    env: Mapping[str, str],
    service_account_dir: Path,
) -> tuple[Path, ...] | Credentials:
    """The kubeconfig files to merge, or the service account's credentials."""
    if kubeconfig is not None:
        listed = [kubeconfig] if isinstance(kubeconfig, str | os.PathLike) else kubeconfig
        return tuple(Path(p).expanduser() for p in listed)
    if listed_env := env.get("KUBECONFIG"):
        return tuple(Path(p).expanduser() for p in listed_env.split(os.pathsep) if p)
    if (found := in_cluster(env, service_account_dir)) is not None:
        return found
    if DEFAULT_KUBECONFIG.expanduser().is_file():
        return (DEFAULT_KUBECONFIG.expanduser(),)
    raise errors.ConfigError(
        "no Kubernetes credentials found: run in a pod with a service account, set KUBECONFIG, or"
        " set the kubeconfig setting",
        key="kubeconfig",
    )


def in_cluster(
    environ: Mapping[str, str], directory: Path = SERVICE_ACCOUNT_DIR
) -> Credentials | None:
    """The pod's service account (token file, CA, namespace), or None outside a pod."""
    host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT")
    token = directory / "token"
    if not host or not port or not token.is_file():
        return None
    host = f"[{host}]" if ":" in host else host  # an IPv6 service address
    ca, namespace = directory / "ca.crt", directory / "namespace"
    return Credentials(
        server=f"https://{host}:{port}",
        ca_file=ca if ca.is_file() else None,
        token_file=token,
        namespace=namespace.read_text(encoding="utf-8").strip() if namespace.is_file() else None,
        source="service account",
    )


def merge_kubeconfigs(paths: Sequence[Path]) -> dict[str, Any]:
    """One kubeconfig document from several, as kubectl merges $KUBECONFIG.

    The first file to define a cluster, user or context name wins, and the
    first `current-context` set wins. Relative file paths become absolute,
    resolved against the file that holds them. Missing files are skipped.
    """
    merged: dict[str, Any] = {section: {} for section in _SECTIONS}
    current: str | None = None
    readable = [p for p in paths if p.is_file()]
    if not readable:
        raise errors.ConfigError(
            f"kubeconfig {', '.join(map(str, paths))} not found: fix the path", key="kubeconfig"
        )
    for path in readable:
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise errors.ConfigError(
                f"kubeconfig {path} is not readable YAML ({type(exc).__name__}): fix the file",
                key="kubeconfig",
            ) from None
        if not isinstance(document, Mapping):
            raise errors.ConfigError(f"kubeconfig {path} is no mapping: fix it", key="kubeconfig")
        current = current or document.get("current-context") or None
        for section, singular in _SECTIONS.items():
            for entry in document.get(section) or []:
                body = _absolute(dict(entry.get(singular) or {}), path.parent)
                merged[section].setdefault(str(entry.get("name", "")), body)
    merged["current-context"] = current
    merged["files"] = [str(p) for p in readable]
    return merged


# Keys whose value is a path, per section; relative ones are relative to their file.
_PATH_KEYS = ("certificate-authority", "client-certificate", "client-key", "tokenFile")


def _absolute(entry: dict[str, Any], base: Path) -> dict[str, Any]:
    for key in _PATH_KEYS:
        if isinstance(value := entry.get(key), str) and value:
            entry[key] = str(base / Path(value).expanduser())
    if isinstance(plugin := entry.get("exec"), Mapping):
        entry["exec"] = {**plugin, "baseDir": str(base)}
    return entry


async def from_kubeconfig(
    paths: Sequence[Path], *, context: str | None = None, environ: Mapping[str, str] | None = None
) -> Credentials:
    """The current (or `context`'s) cluster and user of the merged kubeconfig(s).

    An exec plugin user runs the plugin now (with `environ`, default: this process's).
    """
    env = dict(os.environ if environ is None else environ)
    return await _from_kubeconfig(
        tuple(paths), context, env, _Origin(tuple(paths), context, None, env)
    )


async def _from_kubeconfig(
    paths: Sequence[Path], context: str | None, env: Mapping[str, str], origin: _Origin
) -> Credentials:
    merged = merge_kubeconfigs(paths)
    where = ", ".join(merged["files"])
    name = context or merged["current-context"]
    if not name or name not in merged["contexts"]:
        raise errors.ConfigError(
            f"kubeconfig {where}: context {name!r} not found: set current-context"
            " (kubectl config use-context NAME)",
            key="current-context",
        )
    ctx = merged["contexts"][name]
    cluster = merged["clusters"].get(str(ctx.get("cluster", "")))
    if cluster is None or not cluster.get("server"):
        raise errors.ConfigError(
            f"kubeconfig {where}: context {name} names cluster {ctx.get('cluster')!r}, which is"
            " missing or has no server: add it",
            key="clusters",
        )
    user_name = str(ctx.get("user", ""))
    user = merged["users"].get(user_name, {})
    if "auth-provider" in user:
        raise errors.ConfigError(
            f"kubeconfig {where}: user {user_name!r} uses an auth-provider plugin, which"
            " Kubernetes removed in 1.26: switch it to an exec plugin (e.g. kubelogin)",
            key="users",
        )
    credentials = Credentials(
        server=str(cluster["server"]).rstrip("/"),
        ca_file=_path(cluster.get("certificate-authority")),
        ca_data=_data(cluster, "certificate-authority-data", where),
        insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
        cert_file=_path(user.get("client-certificate")),
        key_file=_path(user.get("client-key")),
        cert_data=_data(user, "client-certificate-data", where),
        key_data=_data(user, "client-key-data", where),
        token=user.get("token") or None,
        token_file=_path(user.get("tokenFile")),
        namespace=ctx.get("namespace") or None,
        source=f"kubeconfig {where}, user {user_name!r}",
        _origin=origin,
    )
    if isinstance(plugin := user.get("exec"), Mapping):
        exec_plugin = _exec_plugin(plugin, cluster, user_name, where)
        return await run_exec_plugin(dataclasses.replace(credentials, plugin=exec_plugin), env)
    return credentials


def _path(value: object) -> Path | None:
    return Path(value) if isinstance(value, str) and value else None


def _data(entry: Mapping[str, Any], key: str, where: str) -> bytes | None:
    value = entry.get(key)
    if not value:
        return None
    try:
        return base64.b64decode(str(value), validate=True)
    except ValueError:
        raise errors.ConfigError(
            f"kubeconfig {where}: {key} is not base64: fix it", key=key
        ) from None


def _exec_plugin(
    plugin: Mapping[str, Any], cluster: Mapping[str, Any], user: str, where: str
) -> ExecPlugin:
    api_version = str(plugin.get("apiVersion") or "")
    if api_version not in EXEC_API_VERSIONS:
        raise errors.ConfigError(
            f"kubeconfig {where}: user {user!r}: exec apiVersion {api_version or '(none)'} is"
            f" not supported: use {' or '.join(EXEC_API_VERSIONS)}",
            key="users.exec.apiVersion",
        )
    if not plugin.get("command"):
        raise errors.ConfigError(
            f"kubeconfig {where}: user {user!r}: exec has no command: add it",
            key="users.exec.command",
        )
    base = plugin.get("baseDir")
    return ExecPlugin(
        api_version=api_version,
        command=str(plugin["command"]),
        args=tuple(str(a) for a in plugin.get("args") or ()),
        env=tuple((str(e["name"]), str(e["value"])) for e in plugin.get("env") or ()),
        base_dir=Path(base) if base else None,
        provide_cluster_info=bool(plugin.get("provideClusterInfo", False)),
        cluster={k: v for k, v in cluster.items() if k != "extensions"},
        interactive=str(plugin.get("interactiveMode") or "IfAvailable"),
        install_hint=plugin.get("installHint"),
        user=user,
    )


async def run_exec_plugin(credentials: Credentials, environ: Mapping[str, str]) -> Credentials:
    """`credentials` with what its exec plugin answers now: a token or a client certificate."""
    plugin = credentials.plugin
    assert plugin is not None
    where = f"exec plugin of user {plugin.user!r} ({plugin.command})"
    if plugin.interactive == "Always":
        raise errors.ConfigError(
            f"{where} has interactiveMode Always, and this process has no terminal: log in"
            " with it once interactively, or pick a non-interactive plugin",
            key="users.exec.interactiveMode",
        )
    command = plugin.command
    if os.sep in command and not Path(command).is_absolute() and plugin.base_dir is not None:
        command = str(plugin.base_dir / command)
    elif os.sep not in command:
        command = shutil.which(command, path=environ.get("PATH")) or command
    spec: dict[str, Any] = {"interactive": False}
    if plugin.provide_cluster_info:
        spec["cluster"] = _cluster_info(plugin.cluster)
    info = {"apiVersion": plugin.api_version, "kind": "ExecCredential", "spec": spec}
    env = {**environ, **dict(plugin.env), "KUBERNETES_EXEC_INFO": json.dumps(info)}
    try:
        process = await asyncio.create_subprocess_exec(
            command,
            *plugin.args,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        hint = f" ({plugin.install_hint.strip()})" if plugin.install_hint else ""
        raise errors.ConfigError(
            f"{where} cannot run: {type(exc).__name__}: install it or fix the command{hint}",
            key="users.exec.command",
        ) from None
    try:
        out, err = await asyncio.wait_for(process.communicate(), EXEC_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise errors.ConfigError(
            f"{where} did not answer within {EXEC_TIMEOUT:.0f}s: check that it can log in"
            " without a terminal",
            key="users.exec.command",
        ) from None
    if process.returncode:
        # Its stderr says why (expired session, missing login); redaction scrubs token shapes.
        tail = err.decode("utf-8", "replace").strip()[-500:]
        raise errors.ConfigError(
            f"{where} exited with {process.returncode}: {tail or 'no output'}",
            key="users.exec.command",
        )
    return _with_exec_credential(credentials, out, where)


def _cluster_info(cluster: Mapping[str, Any]) -> dict[str, Any]:
    info: dict[str, Any] = {"server": cluster.get("server")}
    if cluster.get("certificate-authority-data"):
        info["certificate-authority-data"] = cluster["certificate-authority-data"]
    if cluster.get("insecure-skip-tls-verify"):
        info["insecure-skip-tls-verify"] = True
    return info


def _with_exec_credential(credentials: Credentials, output: bytes, where: str) -> Credentials:
    plugin = credentials.plugin
    assert plugin is not None
    try:
        answer = json.loads(output)
        status = answer["status"]
        if answer.get("apiVersion") != plugin.api_version or not isinstance(status, dict):
            raise ValueError("apiVersion")
    except (ValueError, KeyError, TypeError):
        raise errors.ConfigError(
            f"{where} printed no ExecCredential of {plugin.api_version} with a status: fix the"
            " plugin or its apiVersion in the kubeconfig",
            key="users.exec.apiVersion",
        ) from None
    expires = status.get("expirationTimestamp")
    expires_at = dt.datetime.fromisoformat(expires.replace("Z", "+00:00")) if expires else None
    cert, key = status.get("clientCertificateData"), status.get("clientKeyData")
    if status.get("token"):
        return dataclasses.replace(
            credentials, token=str(status["token"]), token_file=None, expires_at=expires_at
        )
    if cert and key:
        return dataclasses.replace(
            credentials,
            cert_data=str(cert).encode(),
            key_data=str(key).encode(),
            cert_file=None,
            key_file=None,
            expires_at=expires_at,
        )
    raise errors.ConfigError(
        f"{where} answered neither a token nor clientCertificateData with clientKeyData: fix"
        " the plugin",
        key="users.exec",
    )


__all__ = [
    "DEFAULT_KUBECONFIG",
    "SERVICE_ACCOUNT_DIR",
    "Credentials",
    "ExecPlugin",
    "from_kubeconfig",
    "in_cluster",
    "load_credentials",
    "merge_kubeconfigs",
    "run_exec_plugin",
]
