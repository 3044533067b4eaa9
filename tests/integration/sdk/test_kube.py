"""llm_infra.kube against the real kube-apiserver: logins, writes, lists, watches, refusals.

Logins: a kubeconfig whose user is an exec credential plugin (tests/servers/kube.py's
script answering ExecCredentials with client certificates); a service-account token
file that rotates under a running client; one re-login after a 401, never a loop.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from llm_infra import errors
from llm_infra import kube as k8s
from tests.servers.kube import KubeServer

pytestmark = pytest.mark.kube

COMPONENT = "kube-test"


def _config_map(namespace: str, name: str, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": {"test": "kube"}},
        "data": data,
    }


# -- logins ------------------------------------------------------------------------------------


async def test_an_exec_plugin_with_a_client_certificate_logs_in(
    kube: KubeServer, namespace: str
) -> None:
    plugin = kube.exec_kubeconfig_for("exec-admin", groups=("system:masters",))
    async with await k8s.Kube.connect(plugin.kubeconfig, component=COMPONENT) as client:
        assert client.credentials.plugin is not None
        assert client.credentials.expires_at is not None
        await client.apply(_config_map(namespace, "via-exec", a="1"))
        found = await client.get(k8s.CONFIGMAPS, namespace, "via-exec")
    assert found is not None
    assert found["data"] == {"a": "1"}
    # The plugin ran once, non-interactive, and was told the cluster (provideClusterInfo).
    [call] = plugin.calls
    info = json.loads(call["info"])
    assert info["spec"]["interactive"] is False
    assert info["spec"]["cluster"]["server"] == kube.url


async def test_a_401_leads_to_one_login_again(kube: KubeServer, namespace: str) -> None:
    """The first certificate is refused (unknown CA); the plugin's second answer works."""
    refused = kube.exec_credential("exec-relogin", groups=("system:masters",), trusted=False)
    good = kube.exec_credential("exec-relogin", groups=("system:masters",))
    plugin = kube.exec_kubeconfig_for("exec-relogin", answers=[refused, good])
    async with await k8s.Kube.connect(plugin.kubeconfig, component=COMPONENT) as client:
        listed = await client.list(k8s.CONFIGMAPS, namespace=namespace)
        assert client.logins == 1
    assert isinstance(listed.items, list)
    assert len(plugin.calls) == 2


async def test_credentials_refused_twice_are_an_error_not_a_loop(kube: KubeServer) -> None:
    refused = kube.exec_credential("exec-refused", trusted=False)
    plugin = kube.exec_kubeconfig_for("exec-refused", answers=[refused])
    async with await k8s.Kube.connect(plugin.kubeconfig, component=COMPONENT) as client:
        with pytest.raises(errors.InvalidCredentials) as caught:
            await client.list(k8s.NAMESPACES)
        with pytest.raises(errors.InvalidCredentials):
            await client.list(k8s.NAMESPACES)  # each call: at most one login again
    assert "also after logging in again" in caught.value.message
    assert len(plugin.calls) == 3  # connect, then one login per refused call


async def test_a_failing_plugin_says_which_and_why(kube: KubeServer, tmp_path: Path) -> None:
    plugin = kube.exec_kubeconfig_for("exec-broken")
    (plugin.dir / "plugin.py").write_text("import sys\nsys.exit('session expired: run login')\n")
    with pytest.raises(errors.ConfigError) as caught:
        await k8s.Kube.connect(plugin.kubeconfig, component=COMPONENT)
    assert "exec plugin of user 'exec-broken'" in caught.value.message
    assert "session expired: run login" in caught.value.message


async def test_a_rotated_token_file_is_picked_up_without_a_restart(
    kube: KubeServer, namespace: str, tmp_path: Path
) -> None:
    """Bound tokens, as the kubelet projects them: the old one dies with its bound object."""
    kube.kubectl("create", "serviceaccount", "reader", "-n", namespace)
    kube.kubectl("create", "role", "reader", "--verb=get,list", "--resource=configmaps",
                 "-n", namespace)  # fmt: skip
    kube.kubectl("create", "rolebinding", "reader", "--role=reader",
                 f"--serviceaccount={namespace}:reader", "-n", namespace)  # fmt: skip

    def token(bound: str) -> str:
        kube.kubectl("create", "secret", "generic", bound, "-n", namespace)
        minted = kube.kubectl(
            "create", "token", "reader", "-n", namespace,
            "--bound-object-kind=Secret", f"--bound-object-name={bound}",
        )  # fmt: skip
        return minted.stdout.strip()

    token_file = tmp_path / "token"
    token_file.write_text(token("first"))
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "t",
                        "cluster": {"server": kube.url, "certificate-authority": str(kube.ca_file)},
                    }
                ],
                "users": [{"name": "reader", "user": {"tokenFile": str(token_file)}}],
                "contexts": [{"name": "t", "context": {"cluster": "t", "user": "reader"}}],
                "current-context": "t",
            }
        )
    )
    async with await k8s.Kube.connect(kubeconfig, component=COMPONENT) as client:
        await client.list(k8s.CONFIGMAPS, namespace=namespace)
        token_file.write_text(token("second"))  # the kubelet rotates the file...
        kube.kubectl("delete", "secret", "first", "-n", namespace)  # ...the old token dies
        async with asyncio.timeout(30):
            while True:  # the API server's token cache may accept the old one a moment longer
                listed = await client.list(k8s.CONFIGMAPS, namespace=namespace)
                if client.credentials.current_token() == token_file.read_text():
                    break
        assert isinstance(listed.items, list)


# -- writes, reads, lists, watches -------------------------------------------------------------


async def test_server_side_apply_owns_only_its_fields(kube: KubeServer, namespace: str) -> None:
    async with await k8s.Kube.connect(kube.kubeconfig, component=COMPONENT) as client:
        await client.apply(_config_map(namespace, "owned", ours="1"))
        # Someone else adds a label; our next apply keeps it and changes only our field.
        kube.kubectl("label", "configmap", "owned", "team=x", "-n", namespace)
        applied = await client.apply(_config_map(namespace, "owned", ours="2"))
    assert applied["data"] == {"ours": "2"}
    assert applied["metadata"]["labels"]["team"] == "x"
    managers = {m["manager"] for m in applied["metadata"]["managedFields"]}
    assert COMPONENT in managers


async def test_lists_page_through_everything(kube: KubeServer, namespace: str) -> None:
    async with await k8s.Kube.connect(kube.kubeconfig, component=COMPONENT) as client:
        for i in range(7):
            await client.create(_config_map(namespace, f"page-{i}", i=str(i)))
        listed = await client.list(
            k8s.CONFIGMAPS, namespace=namespace, labels={"test": "kube"}, page=3
        )
        by_label = await client.list(k8s.CONFIGMAPS, namespace=namespace, labels={"test": None})
    names = sorted(item["metadata"]["name"] for item in listed.items)
    assert names == [f"page-{i}" for i in range(7)]
    assert len(by_label.items) == 7
    assert listed.resource_version


async def test_patches_deletes_and_secrets(kube: KubeServer, namespace: str) -> None:
    async with await k8s.Kube.connect(kube.kubeconfig, component=COMPONENT) as client:
        await client.create(_config_map(namespace, "patched", a="1"))
        patched = await client.patch(k8s.CONFIGMAPS, namespace, "patched", {"data": {"b": "2"}})
        assert patched is not None
        assert patched["data"] == {"a": "1", "b": "2"}
        assert await client.delete(k8s.CONFIGMAPS, namespace, "patched") is True
        assert await client.delete(k8s.CONFIGMAPS, namespace, "patched") is False
        missing = await client.patch(
            k8s.CONFIGMAPS, namespace, "patched", {"data": {}}, missing_ok=True
        )
        assert missing is None
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s", "namespace": namespace},
            "stringData": {"password": "s3cret"},
        }
        await client.create(secret)
        assert await client.secret_data(namespace, "s") == {"password": "s3cret"}
        assert await client.secret_data(namespace, "absent") is None


async def test_watches_resume_from_a_version_and_deliver_bookmarks(
    kube: KubeServer, namespace: str
) -> None:
    async with await k8s.Kube.connect(kube.kubeconfig, component=COMPONENT) as client:
        await client.create(_config_map(namespace, "before", a="1"))
        listed = await client.list(k8s.CONFIGMAPS, namespace=namespace)
        await client.create(_config_map(namespace, "after", a="1"))
        # From the list's version: only what came after it.
        async with asyncio.timeout(20):
            watch = client.watch(
                k8s.CONFIGMAPS, namespace=namespace, resource_version=listed.resource_version
            )
            first = await anext(aiter(watch))
        assert (first.type, first.object["metadata"]["name"]) == ("ADDED", "after")
        # Without a version: the current objects, then the bookmark that ends them. Periodic
        # bookmarks come about once a minute; this one proves they are asked for and read.
        seen: list[tuple[str, str]] = []
        async with asyncio.timeout(20):
            async for event in client.watch(
                k8s.CONFIGMAPS, namespace=namespace, resource_version=None
            ):
                annotations = event.object["metadata"].get("annotations") or {}
                seen.append((event.type, event.object["metadata"].get("name", "")))
                if annotations.get("k8s.io/initial-events-end") == "true":
                    break
    assert sorted(seen[:-1]) == [("ADDED", "after"), ("ADDED", "before")]
    assert seen[-1][0] == "BOOKMARK"


async def test_refusals_name_the_rbac_rule_and_the_crd(kube: KubeServer, namespace: str) -> None:
    stranger = kube.kubeconfig_for(f"stranger-{uuid.uuid4().hex[:6]}")
    async with await k8s.Kube.connect(stranger, component="llm-infra-test") as client:
        with pytest.raises(errors.InsufficientPermissions) as caught:
            await client.get(k8s.SECRETS, namespace, "anything")
    message = caught.value.message
    assert "RBAC forbids get secrets in namespace" in message
    assert "bind llm-infra-test's account to a Role in that namespace" in message
    assert '{apiGroups: [""], resources: [secrets], verbs: [get]}' in message
    nothing = k8s.Kind("example.com", "v1", "Nothing", "nothings")
    async with await k8s.Kube.connect(kube.kubeconfig, component=COMPONENT) as client:
        with pytest.raises(errors.NotFound, match="is the CRD installed"):
            await client.list(nothing, namespace=namespace)


async def test_events_are_posted_on_the_object(kube: KubeServer, namespace: str) -> None:
    async with await k8s.Kube.connect(kube.kubeconfig, component=COMPONENT) as client:
        involved = await client.create(_config_map(namespace, "eventful"))
        await client.post_event(involved, "Warning", "Tested", "something happened")
        listed = await client.list(k8s.EVENTS, namespace=namespace)
    [event] = [e for e in listed.items if e["involvedObject"]["name"] == "eventful"]
    assert (event["type"], event["reason"], event["message"]) == (
        "Warning",
        "Tested",
        "something happened",
    )
    assert event["reportingComponent"] == COMPONENT
