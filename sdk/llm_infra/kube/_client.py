"""`Kube`: llm-infra's one Kubernetes API client, on lightkube, with our policy around it.

lightkube sends, pages lists, decodes, applies server-side and watches; this
module adds what every caller of ours needs and lightkube leaves out:

- objects in and out as plain dicts (`Object`): resources are parsed by the
  `llm_infra.api` models at the edge, Secrets decoded by `secret_data`, the
  one place that does it;
- one re-login after a 401 (`Credentials.login()`: the exec plugin runs again,
  the token file is read again), before a call when exec credentials expire,
  and never a loop: a second 401 is `errors.InvalidCredentials`;
- errors of `llm_infra.errors` that say what to fix: a 403 names the RBAC rule
  that is missing (API group, resource, verb, namespace), a 401 the credentials
  to check, a 404 the CRD to install;
- watches with bookmarks (`allowWatchBookmarks`), which lightkube's public
  `watch` does not ask for, through its own watch driver;
- Events posted as `kubectl describe` shows them, under the caller's component.

Kinds are named by `Kind` (`Kind.of(model)` for ours, so group, version and
plural come from the model). The field manager is the caller's, given once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import datetime as dt
import functools
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, TypeVar

import httpx2
import lightkube
from lightkube import generic_resource
from lightkube.config.kubeconfig import KubeConfig
from lightkube.config.models import Cluster, User
from lightkube.models.authentication_v1 import TokenRequestSpec, TokenReviewSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.authentication_v1 import TokenReview
from lightkube.resources.core_v1 import ServiceAccountToken
from lightkube.types import OnErrorAction, OnErrorResult, PatchType

from llm_infra import errors
from llm_infra.api._resource import Resource
from llm_infra.api.v1alpha1 import KINDS
from llm_infra.kube._credentials import Credentials, load_credentials

Object = dict[str, Any]
Selector = Mapping[str, str | None]
"""Label selector as a mapping: key -> value, or None for "the label exists"."""
Verb = str
WatchType = Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]

WATCH_SECONDS = 290
"""Seconds one watch request lasts before lightkube renews it (the server's default: 5-10 min)."""
LIST_PAGE = 500
TIMEOUT = 10.0

_T = TypeVar("_T")
_log = logging.getLogger(__name__)


# -- kinds -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Kind:
    """An API resource: group ("" for core), version, kind and plural."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool = True

    @classmethod
    def of(cls, model: type[Resource]) -> Kind:
        """One of our custom resources, named by its model (never by string literals)."""
        crd = model.crd
        return cls(crd.group, crd.version, crd.kind, crd.plural)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def rule(self, verb: Verb) -> str:
        """The RBAC rule that allows `verb`, as a reader would write it in a (Cluster)Role."""
        return f"apiGroups: [{json.dumps(self.group)}], resources: [{self.plural}], verbs: [{verb}]"

    def resource(self) -> Any:
        """lightkube's generic class of this kind (objects decode to dicts, no generated model)."""
        return _generic(self)


@functools.cache
def _generic(kind: Kind) -> Any:
    create = (
        generic_resource.create_namespaced_resource
        if kind.namespaced
        else generic_resource.create_global_resource
    )
    return create(kind.group, kind.version, kind.kind, kind.plural)


CONFIGMAPS = Kind("", "v1", "ConfigMap", "configmaps")
SECRETS = Kind("", "v1", "Secret", "secrets")
EVENTS = Kind("", "v1", "Event", "events")
NAMESPACES = Kind("", "v1", "Namespace", "namespaces", namespaced=False)
DEPLOYMENTS = Kind("apps", "v1", "Deployment", "deployments")
STATEFULSETS = Kind("apps", "v1", "StatefulSet", "statefulsets")
DAEMONSETS = Kind("apps", "v1", "DaemonSet", "daemonsets")
WORKLOADS = {k.kind: k for k in (DEPLOYMENTS, STATEFULSETS, DAEMONSETS)}
_KNOWN = (CONFIGMAPS, SECRETS, EVENTS, NAMESPACES, *WORKLOADS.values())


@dataclasses.dataclass(frozen=True)
class Listed:
    items: list[Object]
    resource_version: str


@dataclasses.dataclass(frozen=True)
class WatchEvent:
    type: WatchType
    object: Object = dataclasses.field(repr=False)


def key_of(obj: Mapping[str, Any]) -> tuple[str, str]:
    """(namespace, name) of an object as the API serves it."""
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def decode_secret(secret: Mapping[str, Any]) -> dict[str, str]:
    """A Secret's `data` decoded (and `stringData` as given). Never log the result."""
    decoded = {
        key: base64.b64decode(value).decode("utf-8", errors="replace")
        for key, value in (secret.get("data") or {}).items()
    }
    decoded.update({k: str(v) for k, v in (secret.get("stringData") or {}).items()})
    return decoded


# -- the client --------------------------------------------------------------------------------


class Kube:
    """One API client per process: `await Kube.connect(...)`, `await kube.aclose()` at the end.

    `component` names the caller in Events, User-Agent and RBAC hints
    ("bind llm-infra-operator's account to ..."); `field_manager` owns the
    fields its server-side applies set.
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        component: str,
        field_manager: str | None = None,
        timeout: float = TIMEOUT,
    ) -> None:
        self.component = component
        self.field_manager = field_manager or component
        self._timeout = timeout
        self._credentials = credentials
        self._client = self._build(credentials)
        self._retired: list[lightkube.AsyncClient] = []
        self._login = asyncio.Lock()
        self.logins = 0
        """How often the credentials were renewed (after a 401 or an expiry)."""

    @classmethod
    async def connect(
        cls,
        kubeconfig: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
        *,
        context: str | None = None,
        component: str,
        field_manager: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Kube:
        """Log in with `load_credentials` (kubeconfig, $KUBECONFIG, service account, ~/.kube)."""
        credentials = await load_credentials(kubeconfig, context=context, environ=environ)
        return cls(credentials, component=component, field_manager=field_manager)

    @property
    def credentials(self) -> Credentials:
        return self._credentials

    @property
    def server(self) -> str:
        return self._credentials.server

    async def aclose(self) -> None:
        for client in [*self._retired, self._client]:
            await client.aclose()
        self._retired.clear()

    async def __aenter__(self) -> Kube:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- reads ---------------------------------------------------------------------------------

    async def get(self, kind: Kind, namespace: str | None, name: str) -> Object | None:
        """The object as served now, or None when it does not exist."""

        async def get(client: lightkube.AsyncClient) -> Any:
            return await client.get(kind.resource(), name, namespace=namespace)

        found = await self._call("get", kind, namespace, get, missing_ok=True)
        return None if found is None else _plain(found)

    async def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's values, decoded; None when it does not exist. Never log the result."""
        found = await self.get(SECRETS, namespace, name)
        return None if found is None else decode_secret(found)

    async def list(
        self,
        kind: Kind,
        *,
        namespace: str | None = None,
        labels: Selector | None = None,
        page: int = LIST_PAGE,
    ) -> Listed:
        """Every matching object (all pages) and the resourceVersion to watch from."""

        async def listed(client: lightkube.AsyncClient) -> Listed:
            pages = client.list(
                kind.resource(),
                namespace=_scope(kind, namespace),
                chunk_size=page,
                labels=_selector(labels),
            )
            items = [_plain(item) async for item in pages]
            try:
                version = pages.resourceVersion
            except lightkube.NotReadyError:  # no page was read: nothing matched
                version = ""
            return Listed(items, version)

        found: Listed = await self._call("list", kind, namespace, listed)
        return found

    async def watch(
        self,
        kind: Kind,
        *,
        namespace: str | None = None,
        labels: Selector | None = None,
        resource_version: str | None,
        seconds: int = WATCH_SECONDS,
    ) -> AsyncIterator[WatchEvent]:
        """The changes after `resource_version`, with bookmarks, until the caller stops.

        `resource_version` None streams the current objects first (ADDED each),
        then a BOOKMARK annotated ``k8s.io/initial-events-end``, then the changes:
        a list as a watch (Kubernetes' WatchList). lightkube renews the request
        every `seconds` from the last version seen. An expired version (410 Gone)
        raises `errors.ExternalServiceError` with status_code 410 (`expired`):
        list again and watch from the new one.
        """
        relogin = True
        while True:
            client = await self._fresh_client()
            # lightkube's public watch() cannot ask for bookmarks: its request builder and
            # watch driver can (tests/integration/sdk/test_kube.py sees a bookmark arrive).
            generic = client._client
            request = generic.prepare_request(
                "list",
                res=kind.resource(),
                namespace=_scope(kind, namespace),
                watch=True,
                params={
                    "allowWatchBookmarks": "true",
                    "resourceVersion": resource_version,
                    "timeoutSeconds": seconds,
                    "labelSelector": _selector_text(labels),
                    **(
                        {"sendInitialEvents": "true", "resourceVersionMatch": "NotOlderThan"}
                        if resource_version is None
                        else {}
                    ),
                },
            )
            try:
                async for event_type, obj in generic.watch(request, on_error=_raise):
                    relogin = True  # a stream that delivered may log in again when refused
                    yield WatchEvent(event_type, _plain(obj))
                    resource_version = (obj.get("metadata") or {}).get(
                        "resourceVersion", resource_version
                    )
            except (httpx2.HTTPError, lightkube.ConfigError) as exc:
                await self._recover(exc, client, "watch", kind, namespace, relogin=relogin)
                relogin = False
                continue
            return

    # -- writes --------------------------------------------------------------------------------

    async def apply(self, obj: Mapping[str, Any], *, force: bool = True) -> Object:
        """Server-side apply of `obj` (apiVersion, kind, metadata.name/namespace) as ours."""
        kind = _kind_of(obj)
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace")
        resource = kind.resource()

        async def apply(client: lightkube.AsyncClient) -> Any:
            # The namespace comes from the object's metadata.
            return await client.apply(
                resource(dict(obj)), field_manager=self.field_manager, force=force
            )

        return _plain(await self._call("patch", kind, namespace, apply))

    async def patch(
        self,
        kind: Kind,
        namespace: str | None,
        name: str,
        patch: Mapping[str, Any],
        *,
        status: bool = False,
        missing_ok: bool = False,
    ) -> Object | None:
        """A JSON merge patch of the object (of its status subresource with `status`).

        None when it does not exist and `missing_ok`.
        """
        resource = kind.resource().Status if status else kind.resource()

        async def patched(client: lightkube.AsyncClient) -> Any:
            return await client.patch(
                resource,
                name,
                dict(patch),
                namespace=namespace,
                patch_type=PatchType.MERGE,
                field_manager=self.field_manager,
            )

        verb = "patch"
        target = dataclasses.replace(kind, plural=f"{kind.plural}/status") if status else kind
        found = await self._call(verb, target, namespace, patched, missing_ok=missing_ok)
        return None if found is None else _plain(found)

    async def create(self, obj: Mapping[str, Any]) -> Object:
        kind = _kind_of(obj)
        namespace = (obj.get("metadata") or {}).get("namespace")

        async def created(client: lightkube.AsyncClient) -> Any:
            return await client.create(kind.resource()(dict(obj)), field_manager=self.field_manager)

        return _plain(await self._call("create", kind, namespace, created))

    async def delete(self, kind: Kind, namespace: str | None, name: str) -> bool:
        """Delete the object; False when it was already gone."""

        async def deleted(client: lightkube.AsyncClient) -> bool:
            await client.delete(kind.resource(), name, namespace=namespace)
            return True

        return bool(await self._call("delete", kind, namespace, deleted, missing_ok=True))

    async def post_event(
        self, involved: Mapping[str, Any], type_: str, reason: str, message: str
    ) -> None:
        """A core/v1 Event on `involved`, as `kubectl describe` shows them.

        A namespace going away (404) leaves the event without a reader: not an error.
        """
        meta = involved.get("metadata") or {}
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta['name']}.{uuid.uuid4().hex[:16]}",
                "namespace": meta["namespace"],
            },
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"),
                "kind": involved.get("kind"),
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        with contextlib.suppress(errors.NotFound):
            await self.create(event)

    # -- authentication APIs -------------------------------------------------------------------

    async def token_review(self, token: str, audiences: Sequence[str] = ()) -> Object:
        """The API server's verdict on `token` (TokenReview's status). Never log the token."""
        review = TokenReview(spec=TokenReviewSpec(token=token, audiences=list(audiences) or None))
        kind = Kind("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", False)

        async def reviewed(client: lightkube.AsyncClient) -> Any:
            return await client.create(review)

        answer = await self._call("create", kind, None, reviewed)
        status: Object = answer.status.to_dict() if answer.status is not None else {}
        return status

    async def token_request(
        self,
        namespace: str,
        service_account: str,
        audiences: Sequence[str] = (),
        seconds: int = 600,
    ) -> str:
        """A short-lived token of a service account (TokenRequest), e.g. for an OpenBao login."""
        request = ServiceAccountToken(
            spec=TokenRequestSpec(audiences=list(audiences), expirationSeconds=seconds),
            metadata=ObjectMeta(name=service_account, namespace=namespace),
        )
        kind = Kind("", "v1", "ServiceAccount", "serviceaccounts/token")

        async def issued(client: lightkube.AsyncClient) -> Any:
            return await client.create(request, service_account, namespace=namespace)

        answer = await self._call("create", kind, namespace, issued)
        return str(answer.status.token)

    # -- the exchange --------------------------------------------------------------------------

    async def _call(
        self,
        verb: Verb,
        kind: Kind,
        namespace: str | None,
        operation: Callable[[lightkube.AsyncClient], Awaitable[_T]],
        *,
        missing_ok: bool = False,
    ) -> Any:
        """`operation` with the current client; one re-login after a 401; our errors."""
        client = await self._fresh_client()
        for relogin in (True, False):
            try:
                return await operation(client)
            except (httpx2.HTTPError, lightkube.ConfigError) as exc:
                if missing_ok and _status_code(exc) == 404:
                    return None
                await self._recover(exc, client, verb, kind, namespace, relogin=relogin)
                client = self._client
        raise errors.UnexpectedError("the call loop ended without an answer")  # pragma: no cover

    async def _recover(
        self,
        exc: Exception,
        client: lightkube.AsyncClient,
        verb: Verb,
        kind: Kind,
        namespace: str | None,
        *,
        relogin: bool,
    ) -> None:
        """Return when a try again may work (a 401, logged in again); else raise our error."""
        if isinstance(exc, httpx2.HTTPStatusError):  # lightkube's ApiError, or a non-Status body
            if relogin and _status_code(exc) == 401 and await self._relogin(client):
                return
            raise self._error(exc, verb, kind, namespace) from None
        if isinstance(exc, httpx2.HTTPError):
            raise _transport_error(exc, self.server) from None
        raise errors.ConfigError(str(exc), key="kubeconfig") from None

    async def _fresh_client(self) -> lightkube.AsyncClient:
        client = self._client
        if self._credentials.expired():
            await self._relogin(client)
        return self._client

    async def _relogin(self, stale: lightkube.AsyncClient) -> bool:
        """New credentials in place of those `stale` was built with; False if there are none.

        Calls that failed together log in once: whoever comes second finds a
        newer client already and uses it.
        """
        async with self._login:
            if self._client is not stale:
                return True
            try:
                fresh = await self._credentials.login()
            except errors.InfraError as exc:
                _log.warning("kubernetes: logging in again failed: %s", exc)
                return False
            self.logins += 1
            _log.info("kubernetes: logged in again (%s)", fresh.source)
            # The old client may still carry a watch: closed on the next re-login or at the end.
            for retired in self._retired:
                await retired.aclose()
            self._retired = [self._client]
            self._credentials = fresh
            self._client = self._build(fresh)
            return True

    def _build(self, credentials: Credentials) -> lightkube.AsyncClient:
        cluster = Cluster(
            server=credentials.server,
            certificate_auth=str(credentials.ca_file) if credentials.ca_file else None,
            certificate_auth_data=_b64(credentials.ca_data),
            insecure=credentials.insecure,
        )
        user = User(
            token=credentials.token if credentials.token_file is None else None,
            token_file=str(credentials.token_file) if credentials.token_file else None,
            client_cert=str(credentials.cert_file) if credentials.cert_file else None,
            client_key=str(credentials.key_file) if credentials.key_file else None,
            client_cert_data=_b64(credentials.cert_data),
            client_key_data=_b64(credentials.key_data),
        )
        config = KubeConfig.from_one(
            cluster=cluster, user=user, namespace=credentials.namespace or "default"
        )
        try:
            return lightkube.AsyncClient(
                config,
                field_manager=self.field_manager,
                timeout=httpx2.Timeout(self._timeout),
                # Proxies and CA bundles come from the kubeconfig, as kubectl reads them.
                trust_env=False,
            )
        except (lightkube.ConfigError, OSError, ValueError) as exc:
            raise errors.ConfigError(
                f"{credentials.source}: the TLS material is not usable ({type(exc).__name__}):"
                " check the certificate, key and CA",
                key="kubeconfig",
            ) from None

    def _error(
        self, exc: httpx2.HTTPStatusError, verb: Verb, kind: Kind, namespace: str | None
    ) -> errors.InfraError:
        return status_error(
            _status(exc),
            verb,
            kind,
            namespace,
            component=self.component,
            source=self._credentials.source,
            retry_after=_retry_after(exc),
        )


def status_error(
    status: Mapping[str, Any],
    verb: Verb,
    kind: Kind,
    namespace: str | None,
    *,
    component: str = "llm-infra",
    source: str = "",
    retry_after: str | None = None,
) -> errors.InfraError:
    """A meta/v1 Status as our error; 401, 403 and 404 say what to fix."""
    code = int(status.get("code") or 0)
    message = str(status.get("message") or status.get("reason") or "")
    where = f"namespace {namespace}" if namespace else "all namespaces"
    if code == 401:
        return errors.InvalidCredentials(
            f"the API server refused {component}'s credentials ({message}), also after logging"
            f" in again: check {source or 'its service account token or kubeconfig user'}"
        )
    if code == 403:
        scope = "a Role in that namespace" if namespace else "a ClusterRole"
        return errors.InsufficientPermissions(
            f"RBAC forbids {verb} {kind.plural} in {where}: bind {component}'s account to"
            f" {scope} with the rule {{{kind.rule(verb)}}} (server: {message})"
        )
    if code == 404 and verb in ("list", "watch"):
        return errors.NotFound(
            f"{kind.plural} in {where}: {message}; is the CRD installed?",
            service="kubernetes",
            operation=verb,
            status_code=404,
        )
    return errors.from_kubernetes_status(status, operation=verb, retry_after=retry_after)


def expired(exc: errors.InfraError) -> bool:
    """Whether a watch failed because its resourceVersion is too old (410): list again."""
    return isinstance(exc, errors.ExternalServiceError) and exc.status_code == 410


def _raise(exc: BaseException, count: int) -> OnErrorResult:
    return OnErrorResult(OnErrorAction.RAISE)


def _status(exc: httpx2.HTTPStatusError) -> dict[str, Any]:
    """The meta/v1 Status of a refusal; one made from the answer when it sent none."""
    if not isinstance(exc, lightkube.ApiError):  # e.g. "404 page not found" of an unknown group
        text = exc.response.text.strip()[:200] or exc.response.reason_phrase
        return {"code": exc.response.status_code, "message": text}
    found: dict[str, Any] = exc.status.to_dict()
    # An ERROR event of a watch carries its Status in the stream, with no response of its own.
    response: httpx2.Response | None = exc.response
    if response is not None:
        found.setdefault("code", response.status_code)
    return found


def _retry_after(exc: httpx2.HTTPStatusError) -> str | None:
    response: httpx2.Response | None = exc.response
    return response.headers.get("Retry-After") if response is not None else None


def _status_code(exc: Exception) -> int:
    """The HTTP status of a refusal; 0 for what is no answer (refused connection, bad config)."""
    if not isinstance(exc, httpx2.HTTPStatusError):
        return 0
    return int(_status(exc).get("code") or 0)


def _transport_error(exc: httpx2.HTTPError, server: str) -> errors.InfraError:
    if isinstance(exc, httpx2.TimeoutException):
        return errors.HttpTimeout(
            f"the API server at {server} did not answer in time",
            url=server,
            cause=type(exc).__name__,
        )
    return errors.HttpConnectError(
        f"the API server at {server} is unreachable ({type(exc).__name__}): check that it runs"
        " and the kubeconfig's server address",
        url=server,
        cause=type(exc).__name__,
    )


def _plain(obj: Any) -> Object:
    """A detached plain dict of what lightkube decoded."""
    if hasattr(obj, "to_dict"):
        found: Object = obj.to_dict()
        return found
    return dict(obj)


def _kind_of(obj: Mapping[str, Any]) -> Kind:
    api_version, kind = str(obj.get("apiVersion") or ""), str(obj.get("kind") or "")
    if (known := _known_kinds().get((api_version, kind))) is not None:
        return known
    raise errors.ValidationError(
        f"{kind or '(no kind)'} of apiVersion {api_version or '(none)'} is not a kind llm-infra"
        " writes: name it with a Kind",
        field="kind",
    )


@functools.cache
def _known_kinds() -> dict[tuple[str, str], Kind]:
    """The kinds `apply` and `create` take by their objects' apiVersion and kind."""
    kinds = (*_KNOWN, *(Kind.of(model) for model in KINDS))
    return {(kind.api_version, kind.kind): kind for kind in kinds}


def _scope(kind: Kind, namespace: str | None) -> str | None:
    """lightkube's namespace argument: the one given, every namespace, or none (cluster kinds)."""
    if not kind.namespaced:
        return None
    return namespace or lightkube.ALL_NS


def _selector(labels: Selector | None) -> dict[str, Any] | None:
    if not labels:
        return None
    from lightkube import operators

    return {k: operators.exists() if v is None else v for k, v in labels.items()}


def _selector_text(labels: Selector | None) -> str | None:
    if not labels:
        return None
    return ",".join(k if v is None else f"{k}={v}" for k, v in sorted(labels.items()))


def _b64(data: bytes | None) -> str | None:
    return base64.b64encode(data).decode() if data else None


__all__ = [
    "CONFIGMAPS",
    "DAEMONSETS",
    "DEPLOYMENTS",
    "EVENTS",
    "NAMESPACES",
    "SECRETS",
    "STATEFULSETS",
    "WORKLOADS",
    "Kind",
    "Kube",
    "Listed",
    "Object",
    "Selector",
    "WatchEvent",
    "decode_secret",
    "expired",
    "key_of",
    "status_error",
]
