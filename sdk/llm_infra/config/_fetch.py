"""Fetches the document of a ConfigSource http layer: the one door every such read goes through.

`_layers` calls `fetch` for the operator and the standalone control plane alike; the rules are
an `HttpLayerPolicy` the caller builds from its settings:

- redirects are followed by hand, at most `max_redirects`: within the layer's origin (scheme,
  host, port) always; to another origin only when the request carries no secret (no
  headersSecretRef headers, no user:password in the URL) and never from https to http;
- loopback, link-local (cloud metadata at 169.254.169.254, fe80::/10), unspecified and multicast
  addresses are refused unless `allow_local_addresses`: every address the host resolves to is
  checked before connecting, and the peer of the connection itself before the body is read,
  so a name that resolves differently the second time (DNS rebinding) gets no further;
- the body is streamed and given up past `max_bytes`.

The address rule applies to vault layers too (`check_address`, before any credential is sent),
so a ConfigSource cannot point the operator's OpenBao login at this host's own endpoints.

Errors name the URL (redacted), the rule and the setting, never a header value.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import socket
from collections.abc import Mapping

import httpx

from llm_infra import errors

HTTP_LAYER_MAX_BYTES = 4 * 1024 * 1024
"""Largest http layer document by default (4 MiB)."""
ALLOW_SETTING = "http_layer_allow_local_addresses"
MAX_BYTES_SETTING = "http_layer_max_bytes"

VAULT_LOOKUP_TIMEOUT = 5.0
"""Seconds a vault layer's host lookup may take before the layer fails."""
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Linux connects 0.0.0.0/8 to this host; AWS serves its instance metadata on IPv6 here too.
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_METADATA = (ipaddress.ip_address("fd00:ec2::254"),)


@dataclasses.dataclass(frozen=True)
class HttpLayerPolicy:
    """What an http layer may fetch; the defaults are the safe ones.

    The services build it from their settings `http_layer_allow_local_addresses` and
    `http_layer_max_bytes`, the names the errors tell the reader to change.
    """

    allow_local_addresses: bool = False
    """Also read loopback, link-local, unspecified and multicast addresses (development only)."""
    max_bytes: int = HTTP_LAYER_MAX_BYTES
    """Largest document, in bytes; a larger one fails the layer, unread."""
    max_redirects: int = 5


def local_kind(address: IPAddress) -> str | None:
    """Why `address` is refused ("loopback", "link-local", ...), or None: it may be read."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return "loopback"
    if address.is_link_local or address in _METADATA:
        return "link-local"
    if address.is_unspecified or address in _THIS_NETWORK:
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    return None


async def resolve(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to, as the connection will look them up."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def fetch(
    client: httpx.AsyncClient,
    url: str,
    headers: Mapping[str, str],
    *,
    secret_headers: bool,
    request_timeout: float,
    policy: HttpLayerPolicy,
    shown: str,
) -> tuple[httpx.Response, bytes]:
    """GET `url` under `policy`: the last response (closed) and its body when it is a 2xx.

    `secret_headers` says whether `headers` hold secrets; `request_timeout` bounds each
    request (and each name lookup); `shown` names the layer's source in errors (the URL,
    redacted).
    """
    request = client.build_request("GET", url, headers=headers, timeout=request_timeout)
    origin = _origin(request.url)
    carries_secret = secret_headers or bool(request.url.userinfo)
    for _ in range(policy.max_redirects + 1):
        await _check_host(request.url, policy, request_timeout, shown)
        with errors.translate():
            response = await client.send(request, stream=True, follow_redirects=False)
        try:
            _check_peer(response, policy, shown)
            following = response.next_request
            if following is None:
                body = b""
                if response.is_success:
                    body = await _read_limited(response, policy.max_bytes, shown)
                return response, body
        finally:
            await response.aclose()
        _check_redirect(request.url, following.url, origin, carries_secret, shown)
        request = following
    raise errors.ConfigError(
        f"{shown}: more than {policy.max_redirects} redirects; set url to the final address"
    )


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, url.port or default


def _shown_origin(url: httpx.URL) -> str:
    return f"{url.scheme}://{url.netloc.decode('ascii')}"  # never the path, query or user


def _check_redirect(
    current: httpx.URL,
    target: httpx.URL,
    origin: tuple[str, str, int | None],
    carries_secret: bool,
    shown: str,
) -> None:
    if _origin(target) == origin:
        return
    where = _shown_origin(target)
    if carries_secret:
        # httpx drops Authorization on such a redirect, but not the Secret's other headers.
        raise errors.ConfigError(
            f"{shown} redirected to another origin ({where}); a request with secret headers"
            " (headersSecretRef) follows redirects within its origin (scheme, host, port)"
            " only: set url to the final address"
        )
    if current.scheme == "https" and target.scheme != "https":
        raise errors.ConfigError(
            f"{shown} redirected from https to {where}: refused; set url to an https address"
        )


async def _check_host(
    url: httpx.URL, policy: HttpLayerPolicy, lookup_timeout: float, shown: str
) -> None:
    if policy.allow_local_addresses:
        return
    try:
        addresses = [url.host] if _literal(url.host) else []
        if not addresses:
            port = url.port or (443 if url.scheme == "https" else 80)
            addresses = await asyncio.wait_for(resolve(url.host, port), lookup_timeout)
    except TimeoutError:
        raise errors.HttpTimeout(
            f"{shown}: resolving {url.host} took longer than {lookup_timeout:g}s", url=str(url)
        ) from None
    except OSError:
        return  # the connection fails the same way, and says so; the peer check stands anyway
    for address in addresses:
        lead = f"{address} is" if _literal(url.host) else f"{url.host} resolves to {address},"
        _refuse_local(address, lead, shown)


async def check_address(url: str, policy: HttpLayerPolicy, shown: str) -> None:
    """Refuse `url` if its host is (or resolves to) a local address `policy` does not allow.

    For layers read by another client (hvac for vault layers), which cannot check the
    connected peer: a name that resolves differently between this check and the
    connection is not caught there (http layers check the peer as well).
    """
    await _check_host(httpx.URL(url), policy, VAULT_LOOKUP_TIMEOUT, shown)


def _check_peer(response: httpx.Response, policy: HttpLayerPolicy, shown: str) -> None:
    """The address actually connected to: the name may have resolved anew since `_check_host`."""
    if policy.allow_local_addresses:
        return
    stream = response.extensions.get("network_stream")
    peer = stream.get_extra_info("server_addr") if stream is not None else None
    if not peer:
        # Only a transport with no network connection (a test's mock) comes here.
        raise errors.ConfigError(
            f"{shown}: the transport does not say which address it connected to, so it cannot"
            f" be checked; set {ALLOW_SETTING} to read through it"
        )
    _refuse_local(str(peer[0]), f"the connection went to {peer[0]},", shown)


def _literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _refuse_local(address: str, lead: str, shown: str) -> None:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return  # not an IP socket address (a unix socket): nothing of the network to refuse
    kind = local_kind(parsed)
    if kind is not None:
        raise errors.ConfigError(
            f"{shown}: {lead} a {kind} address: refused, as a config layer must not"
            f" read this host's or the node's private endpoints; set {ALLOW_SETTING} to"
            " allow it (development only)"
        )


async def _read_limited(response: httpx.Response, limit: int, shown: str) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit, shown, f" (it declares {declared})")
    body = bytearray()
    with errors.translate():
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > limit:
                raise _too_large(limit, shown, "")
    return bytes(body)


def _too_large(limit: int, shown: str, declared: str) -> errors.ConfigError:
    return errors.ConfigError(
        f"{shown}: the document is larger than {limit} bytes{declared}, the limit the"
        f" {MAX_BYTES_SETTING} setting sets; make it smaller or raise the setting"
    )
