"""The control plane's Kubernetes reads: credentials, list, watch, and an informer over them.

`cluster` builds its feeds on this module: each feed is an `Informer` that
lists one kind, then watches it from the list's resourceVersion and hands every
change to a handler. Plain REST over httpx, as the operator does, because a
generated client (kubernetes, kubernetes_asyncio, kopf) weighs some 100 MB for
a handful of GETs. The control plane never imports the operator, so the two
clients stay apart on purpose.

Credentials come from, in this order: the kubeconfig the settings name,
`$KUBECONFIG` (several files joined with the path separator merge as kubectl
merges them: the first file to set a value wins), the pod's service account
(KUBERNETES_SERVICE_HOST/PORT, the mounted token re-read when the kubelet
rotates it, the mounted CA), and `~/.kube/config`. Refused calls raise
`llm_infra.errors`: 401 says to check the credentials, 403 names the RBAC rule
that is missing (API group, resource, verb, namespace).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import os
import random
import ssl
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import httpx
import yaml

from llm_infra import errors
from llm_infra.api._resource import Resource

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
USER_AGENT = "llm-infra-controlplane"
WATCH_SECONDS = 290
"""How long one watch request lasts before it is renewed (the API server's default is ~5-10 min)."""
LIST_PAGE = 500

_log = logging.getLogger(__name__)

Object = dict[str, Any]
Key = tuple[str, str]  # namespace, name


# -- what is read --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Kind:
    """An API resource as its URL names it: group ("" for core), version and plural."""

    group: str
    version: str
    plural: str

    @classmethod
    def of(cls, model: type[Resource]) -> Kind:
        """One of our custom resources, named by its model (never by string literals)."""
        return cls(model.crd.group, model.crd.version, model.crd.plural)

    def path(self, namespace: str | None, name: str | None = None) -> str:
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        scope = f"/namespaces/{namespace}" if namespace else ""
        return f"{root}{scope}/{self.plural}" + (f"/{name}" if name else "")

    def rule(self, verb: str) -> str:
        """The RBAC rule that allows `verb`, as a reader would write it in a (Cluster)Role."""
        return f"apiGroups: [{json.dumps(self.group)}], resources: [{self.plural}], verbs: [{verb}]"


CONFIGMAPS = Kind("", "v1", "configmaps")
SECRETS = Kind("", "v1", "secrets")


# -- credentials -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Credentials:
    """Where the API server is and how to prove who we are; secrets never in the repr."""

    server: str
    ca_file: Path | None = None
    ca_data: bytes | None = dataclasses.field(default=None, repr=False)
    cert_file: Path | None = None
    key_file: Path | None = dataclasses.field(default=None, repr=False)
    cert_data: bytes | None = dataclasses.field(default=None, repr=False)
    key_data: bytes | None = dataclasses.field(default=None, repr=False)
    token: str | None = dataclasses.field(default=None, repr=False)
    token_file: Path | None = None
    """Read again whenever it changes (projected service-account tokens rotate)."""
    insecure: bool = False
    source: str = ""
    """Where these came from, for messages: a kubeconfig path or "service account"."""

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(
            cafile=os.fsdecode(self.ca_file) if self.ca_file else None,
            cadata=self.ca_data.decode() if self.ca_data else None,
        )
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.cert_file or self.cert_data:
            # ssl loads certificate chains from files only: inline data goes to a 0700 directory
            # that is removed as soon as the context holds the key.
            with tempfile.TemporaryDirectory(prefix="llm-infra-kube-") as keys:
                cert, key = self.cert_file, self.key_file
                if self.cert_data:
                    cert = Path(keys) / "client.crt"
                    cert.write_bytes(self.cert_data)
                if self.key_data:
                    key = Path(keys) / "client.key"
                    key.write_bytes(self.key_data)
                assert cert is not None
                context.load_cert_chain(os.fsdecode(cert), os.fsdecode(key) if key else None)
        return context


def load_credentials(
    kubeconfig: Path | None = None, *, environ: Mapping[str, str] | None = None
) -> Credentials:
    """The credentials to use: `kubeconfig`, $KUBECONFIG, the service account, ~/.kube/config."""
    env = os.environ if environ is None else environ
    if kubeconfig is not None:
        return from_kubeconfig([kubeconfig])
    if listed := env.get("KUBECONFIG"):
        return from_kubeconfig([Path(p).expanduser() for p in listed.split(os.pathsep) if p])
    if (found := in_cluster(env)) is not None:
        return found
    default = Path.home() / ".kube" / "config"
    if default.is_file():
        return from_kubeconfig([default])
    raise errors.ConfigError(
        "no Kubernetes credentials: run in a pod with a service account, set KUBECONFIG, or set"
        " the kubeconfig setting (LLM_INFRA_KUBECONFIG)",
        key="kubeconfig",
    )


def in_cluster(
    environ: Mapping[str, str], directory: Path = SERVICE_ACCOUNT_DIR
) -> Credentials | None:
    """The pod's service account, or None outside a pod."""
    host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT")
    token = directory / "token"
    if not host or not port or not token.is_file():
        return None
    host = f"[{host}]" if ":" in host else host  # an IPv6 service address
    ca = directory / "ca.crt"
    return Credentials(
        server=f"https://{host}:{port}",
        ca_file=ca if ca.is_file() else None,
        token_file=token,
        source="service account",
    )


def from_kubeconfig(paths: list[Path], *, context: str | None = None) -> Credentials:
    """The current context's cluster and user of the kubeconfig(s) (`context` overrides it)."""
    merged: dict[str, dict[str, tuple[Mapping[str, Any], Path]]] = {
        "clusters": {},
        "users": {},
        "contexts": {},
    }
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
        current = current or document.get("current-context") or None
        for section, entries in merged.items():
            singular = section[:-1]
            for entry in document.get(section) or []:
                # kubectl's merge rule: the first file to define a name wins.
                entries.setdefault(entry.get("name", ""), (entry.get(singular) or {}, path))
    name = context or current
    where = ", ".join(map(str, readable))
    if not name or name not in merged["contexts"]:
        raise errors.ConfigError(
            f"kubeconfig {where}: context {name!r} not found: set current-context"
            " (kubectl config use-context NAME)",
            key="current-context",
        )
    ctx = merged["contexts"][name][0]
    cluster_entry = merged["clusters"].get(ctx.get("cluster", ""))
    if cluster_entry is None or not cluster_entry[0].get("server"):
        raise errors.ConfigError(
            f"kubeconfig {where}: context {name} names cluster {ctx.get('cluster')!r}, which is"
            " missing or has no server: add it",
            key="clusters",
        )
    cluster, cluster_file = cluster_entry
    user, user_file = merged["users"].get(ctx.get("user", ""), ({}, cluster_file))
    if "exec" in user or "auth-provider" in user:
        raise errors.ConfigError(
            f"kubeconfig {where}: user {ctx.get('user')!r} uses an exec or auth-provider plugin,"
            " which the control plane does not run: use a token or client certificate",
            key="users",
        )

    def file(entry: Mapping[str, Any], key: str, base: Path) -> Path | None:
        # Relative paths in a kubeconfig are relative to the file that holds them.
        value = entry.get(key)
        return (base.parent / Path(value).expanduser()) if value else None

    def data(entry: Mapping[str, Any], key: str) -> bytes | None:
        value = entry.get(key)
        return base64.b64decode(value) if value else None

    token_file = file(user, "tokenFile", user_file)
    return Credentials(
        server=str(cluster["server"]).rstrip("/"),
        ca_file=file(cluster, "certificate-authority", cluster_file),
        ca_data=data(cluster, "certificate-authority-data"),
        cert_file=file(user, "client-certificate", user_file),
        key_file=file(user, "client-key", user_file),
        cert_data=data(user, "client-certificate-data"),
        key_data=data(user, "client-key-data"),
        token=user.get("token") or None,
        token_file=token_file,
        insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
        source=where,
    )


class TokenAuth(httpx.Auth):
    """A fixed token, or a token file read again whenever it changes on disk."""

    def __init__(self, token: str | None, token_file: Path | None) -> None:
        self._token = token
        self._file = token_file
        self._stamp: tuple[int, int] | None = None

    def current(self) -> str | None:
        if self._file is None:
            return self._token
        try:
            stat = self._file.stat()
        except OSError:
            return self._token  # mid-rotation: the last one read is still good for a while
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self._token = self._file.read_text(encoding="utf-8").strip()
            self._stamp = stamp
        return self._token

    def auth_flow(self, request: httpx.Request) -> Any:
        if (token := self.current()) is not None:
            request.headers["Authorization"] = f"Bearer {token}"
        yield request


# -- the client --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Listed:
    items: list[Object]
    resource_version: str


@dataclasses.dataclass(frozen=True)
class WatchEvent:
    type: Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]
    object: Object = dataclasses.field(repr=False)


class KubeClient:
    """Reads of the API server: get, list (paged), watch; errors mapped to `llm_infra.errors`."""

    def __init__(self, credentials: Credentials, *, timeout: float = 10.0) -> None:
        self.credentials = credentials
        self._timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=credentials.server,
            verify=credentials.ssl_context(),
            auth=TokenAuth(credentials.token, credentials.token_file),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            timeout=timeout,
        )

    @classmethod
    def connect(cls, kubeconfig: Path | None = None) -> KubeClient:
        return cls(load_credentials(kubeconfig))

    async def close(self) -> None:
        await self._http.aclose()

    async def get(self, kind: Kind, namespace: str | None, name: str) -> Object | None:
        """The object, or None when it does not exist."""
        response = await self._send(kind, namespace, name)
        if response.status_code == 404:
            return None
        _raise_for(response, kind, namespace, "get")
        with errors.translate():
            found: Object = response.json()
        return found

    async def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's values, decoded; None when it does not exist. Never log the result."""
        found = await self.get(SECRETS, namespace, name)
        if found is None:
            return None
        return {
            key: base64.b64decode(value).decode("utf-8", errors="replace")
            for key, value in (found.get("data") or {}).items()
        }

    async def list(
        self, kind: Kind, *, namespace: str | None = None, label_selector: str | None = None
    ) -> Listed:
        """Every matching object (all pages) and the resourceVersion to watch from."""
        items: list[Object] = []
        params: dict[str, str] = {"limit": str(LIST_PAGE)}
        if label_selector:
            params["labelSelector"] = label_selector
        while True:
            response = await self._send(kind, namespace, None, params=params)
            _raise_for(response, kind, namespace, "list")
            with errors.translate():  # a proxy's HTML error page is no list
                page = response.json()
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            if not meta.get("continue"):
                return Listed(items, str(meta.get("resourceVersion", "")))
            params["continue"] = meta["continue"]

    async def watch(
        self,
        kind: Kind,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        resource_version: str,
        seconds: int = WATCH_SECONDS,
    ) -> AsyncIterator[WatchEvent]:
        """The changes after `resource_version`, with bookmarks, for about `seconds`.

        An expired resourceVersion (the server answers 410 Gone, as a status or
        as an ERROR event) raises `errors.ExternalServiceError` with
        status_code 410: list again and watch from the new version.
        """
        params = {
            "watch": "1",
            "allowWatchBookmarks": "true",
            "resourceVersion": resource_version,
            "timeoutSeconds": str(seconds),
        }
        if label_selector:
            params["labelSelector"] = label_selector
        # The server ends the request after `seconds`; a read that waits longer is a dead link.
        timeout = httpx.Timeout(self._timeout, read=seconds + 30)
        with errors.translate(errors.from_httpx):
            async with self._http.stream(
                "GET", kind.path(namespace), params=params, timeout=timeout
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    _raise_for(response, kind, namespace, "watch")
                async for line in response.aiter_lines():
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        raise _status_error(event.get("object") or {}, kind, namespace, "watch")
                    yield WatchEvent(event["type"], event.get("object") or {})

    async def _send(
        self,
        kind: Kind,
        namespace: str | None,
        name: str | None,
        *,
        params: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        with errors.translate(errors.from_httpx):
            return await self._http.get(kind.path(namespace, name), params=params)


def _raise_for(response: httpx.Response, kind: Kind, namespace: str | None, verb: str) -> None:
    if response.is_success:
        return
    try:
        status = response.json()
    except ValueError:
        status = {"code": response.status_code, "message": response.reason_phrase}
    status.setdefault("code", response.status_code)
    raise _status_error(status, kind, namespace, verb)


def _status_error(
    status: Mapping[str, Any], kind: Kind, namespace: str | None, verb: str
) -> errors.InfraError:
    """A meta/v1 Status as our error; 401 and 403 say what to fix."""
    code = int(status.get("code") or 0)
    message = str(status.get("message") or status.get("reason") or "")
    where = f"namespace {namespace}" if namespace else "all namespaces"
    if code == 401:
        return errors.InvalidCredentials(
            f"the API server refused the control plane's credentials ({message}): check its"
            " service account token or kubeconfig user"
        )
    if code == 403:
        scope = "a Role in that namespace" if namespace else "a ClusterRole"
        return errors.InsufficientPermissions(
            f"RBAC forbids {verb} {kind.plural} in {where}: bind the control plane's account to"
            f" {scope} with the rule {{{kind.rule(verb)}}} (server: {message})"
        )
    if code == 404:
        return errors.NotFound(
            f"{kind.plural} in {where}: {message}; is the CRD installed?",
            service="kubernetes",
            operation=verb,
            status_code=404,
        )
    return errors.ExternalServiceError(
        f"{verb} {kind.plural} in {where}: {message}",
        service="kubernetes",
        operation=verb,
        status_code=code or None,
    )


def _expired(exc: errors.InfraError) -> bool:
    return isinstance(exc, errors.ExternalServiceError) and exc.status_code == 410


# -- the informer ------------------------------------------------------------------------------


Handler = Callable[[Object], Awaitable[None]]


def key_of(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


class Informer:
    """List then watch one kind, handing each change to `on_apply` / `on_delete`.

    After the first list it watches from the list's resourceVersion (bookmarks
    keep that version fresh while nothing changes). When the version has
    expired (410 Gone) it lists again: every current object is handed to
    `on_apply` again and each one that vanished meanwhile to `on_delete`, so
    handlers must be idempotent. Other failures are logged and retried with
    capped exponential backoff. A handler that raises is logged with the
    object's namespace/name and the feed goes on.
    """

    def __init__(
        self,
        client: KubeClient,
        kind: Kind,
        *,
        on_apply: Handler,
        on_delete: Handler,
        namespace: str | None = None,
        label_selector: str | None = None,
        name: str | None = None,
        backoff: tuple[float, float] = (0.5, 30.0),
    ) -> None:
        self.client = client
        self.kind = kind
        self.namespace = namespace
        self.label_selector = label_selector
        self.name = name or kind.plural
        self.on_apply = on_apply
        self.on_delete = on_delete
        self.known: dict[Key, Object] = {}
        self.resource_version: str | None = None
        """Where the next watch starts; None lists first. Bookmarks move it too."""
        self.synced = asyncio.Event()
        """Set once the first list has been handed over."""
        self.relists = 0
        self.error: str | None = None
        """Why the last attempt failed, until one succeeds (for /readyz)."""
        self._backoff = backoff

    async def run(self) -> None:
        """List and watch until cancelled."""
        delay = self._backoff[0]
        while True:
            try:
                if self.resource_version is None:
                    await self._relist()
                await self._watch()
                delay = self._backoff[0]
            except errors.InfraError as exc:
                if _expired(exc):
                    _log.info("%s: resourceVersion expired, listing again", self.name)
                    self.resource_version = None
                    continue
                if self.error != exc.message:  # say it once, not every retry
                    _log.warning("%s: %s (retrying)", self.name, exc)
                self.error = exc.message
                # Jitter: replicas that lost the API server together do not return together.
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))  # noqa: S311
                delay = min(delay * 2, self._backoff[1])

    async def _relist(self) -> None:
        listed = await self.client.list(
            self.kind, namespace=self.namespace, label_selector=self.label_selector
        )
        self.relists += 1
        self.error = None
        current = {key_of(obj): obj for obj in listed.items}
        for key, obj in current.items():
            self.known[key] = obj
            await self._handle(self.on_apply, obj)
        for key in [k for k in self.known if k not in current]:
            await self._handle(self.on_delete, self.known.pop(key))
        self.resource_version = listed.resource_version
        self.synced.set()

    async def _watch(self) -> None:
        assert self.resource_version is not None
        async for event in self.client.watch(
            self.kind,
            namespace=self.namespace,
            label_selector=self.label_selector,
            resource_version=self.resource_version,
        ):
            self.error = None
            version = (event.object.get("metadata") or {}).get("resourceVersion")
            if event.type == "BOOKMARK":
                self.resource_version = version or self.resource_version
                continue
            key = key_of(event.object)
            if event.type == "DELETED":
                self.known.pop(key, None)
                await self._handle(self.on_delete, event.object)
            else:
                self.known[key] = event.object
                await self._handle(self.on_apply, event.object)
            self.resource_version = version or self.resource_version

    async def _handle(self, handler: Handler, obj: Object) -> None:
        namespace, name = key_of(obj)
        try:
            await handler(obj)
        except errors.InfraError as exc:
            _log.error("%s %s/%s: %s", self.name, namespace, name, exc)
        except Exception as exc:  # noqa: BLE001  one bad object must not stop the feed
            # The type only: a library's message may quote the object's data.
            _log.error("%s %s/%s: %s (skipped)", self.name, namespace, name, type(exc).__name__)


__all__ = [
    "CONFIGMAPS",
    "SECRETS",
    "Credentials",
    "Informer",
    "Kind",
    "KubeClient",
    "Listed",
    "TokenAuth",
    "WatchEvent",
    "from_kubeconfig",
    "in_cluster",
    "key_of",
    "load_credentials",
]
