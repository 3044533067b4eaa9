"""llm_infra.kube, pure parts: finding the credentials, kinds, Secret decoding, RBAC hints.

Exec plugins run a process and the client talks to an API server: both are in
tests/integration/sdk/test_kube.py, against the real one.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from llm_infra import errors, kube
from llm_infra.api.v1alpha1 import AuditSink


def _kubeconfig(path: Path, users: list[dict[str, Any]], **cluster: Any) -> Path:
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://k8s.example:6443/", **cluster}}],
        "users": users,
        "contexts": [
            {"name": u["name"], "context": {"cluster": "c", "user": u["name"], "namespace": "t"}}
            for u in users
        ],
        "current-context": users[0]["name"] if users else "none",
    }
    path.write_text(yaml.safe_dump(document))
    return path


async def test_kubeconfig_files_are_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    path = _kubeconfig(
        tmp_path / "config",
        [{"name": "me", "user": {"client-certificate": "me.crt", "client-key": "keys/me.key"}}],
        **{"certificate-authority": "ca.crt"},
    )
    credentials = await kube.from_kubeconfig([path])
    assert credentials.server == "https://k8s.example:6443"
    assert credentials.ca_file == tmp_path / "ca.crt"
    assert credentials.cert_file == tmp_path / "me.crt"
    assert credentials.key_file == tmp_path / "keys" / "me.key"
    assert credentials.token is None
    assert credentials.namespace == "t"


async def test_kubeconfig_inline_data_and_token_stay_out_of_the_repr(tmp_path: Path) -> None:
    ca = base64.b64encode(b"-----BEGIN CERTIFICATE-----").decode()
    path = _kubeconfig(
        tmp_path / "config",
        [{"name": "me", "user": {"token": "tok-123", "client-key-data": ca}}],
        **{"certificate-authority-data": ca},
    )
    credentials = await kube.from_kubeconfig([path])
    assert credentials.ca_data == b"-----BEGIN CERTIFICATE-----"
    assert credentials.current_token() == "tok-123"
    assert "tok-123" not in repr(credentials)
    assert "BEGIN" not in repr(credentials)


async def test_kubeconfig_files_merge_as_kubectl_merges_them(tmp_path: Path) -> None:
    first = _kubeconfig(tmp_path / "a", [{"name": "one", "user": {"token": "first"}}])
    second = _kubeconfig(
        tmp_path / "b",
        [{"name": "one", "user": {"token": "second"}}, {"name": "two", "user": {"token": "2"}}],
    )
    # The first file to name a user wins, and a later file may add what the first lacks.
    assert (await kube.from_kubeconfig([first, second])).token == "first"
    assert (await kube.from_kubeconfig([first, second], context="two")).token == "2"
    environ = {"KUBECONFIG": f"{tmp_path / 'missing'}:{second}:{first}"}
    assert (await kube.load_credentials(environ=environ)).token == "second"
    # The path given (the settings' kubeconfig) comes before $KUBECONFIG.
    assert (await kube.load_credentials(first, environ=environ)).token == "first"


async def test_kubeconfig_problems_name_the_fix(tmp_path: Path) -> None:
    path = _kubeconfig(tmp_path / "config", [{"name": "me", "user": {"auth-provider": {}}}])
    with pytest.raises(errors.ConfigError, match="auth-provider plugin"):
        await kube.from_kubeconfig([path])
    with pytest.raises(errors.ConfigError, match="context 'other' not found") as caught:
        await kube.from_kubeconfig([path], context="other")
    assert caught.value.key == "current-context"
    with pytest.raises(errors.ConfigError, match="not found: fix the path"):
        await kube.from_kubeconfig([tmp_path / "nowhere"])
    plugin = {"exec": {"apiVersion": "client.authentication.k8s.io/v1alpha1", "command": "x"}}
    path = _kubeconfig(tmp_path / "alpha", [{"name": "me", "user": plugin}])
    with pytest.raises(errors.ConfigError, match="v1alpha1 is not supported") as caught:
        await kube.from_kubeconfig([path])
    assert caught.value.key == "users.exec.apiVersion"


async def test_no_credentials_anywhere_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(errors.ConfigError, match="service account, set KUBECONFIG"):
        await kube.load_credentials(environ={"HOME": str(tmp_path)}, service_account_dir=tmp_path)


async def test_in_cluster_uses_the_mounted_service_account(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("sa-token\n")
    (tmp_path / "ca.crt").write_text("ca")
    (tmp_path / "namespace").write_text("team-a")
    environ = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    credentials = await kube.load_credentials(environ=environ, service_account_dir=tmp_path)
    assert credentials.server == "https://[fd00::1]:443"
    assert credentials.ca_file == tmp_path / "ca.crt"
    assert credentials.token_file == tmp_path / "token"
    assert credentials.namespace == "team-a"
    assert credentials.source == "service account"
    assert kube.in_cluster({}, tmp_path) is None


async def test_a_token_file_is_read_again_when_it_rotates(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")
    credentials = kube.Credentials(server="https://k8s", token_file=token)
    assert credentials.current_token() == "first"
    token.write_text("second-and-longer\n")
    assert credentials.current_token() == "second-and-longer"
    # login() from a kubeconfig reads the file again too.
    path = _kubeconfig(tmp_path / "config", [{"name": "me", "user": {"tokenFile": "token"}}])
    logged_in = await kube.load_credentials(path)
    token.write_text("third\n")
    assert (await logged_in.login()).current_token() == "third"


def test_exec_credentials_expire_with_a_margin() -> None:
    now = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
    soon = kube.Credentials(server="s", expires_at=now + dt.timedelta(seconds=10))
    later = kube.Credentials(server="s", expires_at=now + dt.timedelta(minutes=10))
    assert soon.expired(now)
    assert not later.expired(now)
    assert not kube.Credentials(server="s").expired(now)


def test_kinds_name_their_api_and_rbac_rule() -> None:
    sinks = kube.Kind.of(AuditSink)
    assert (sinks.api_version, sinks.plural) == ("infra.llmdevops.io/v1alpha1", "auditsinks")
    assert sinks.rule("watch") == (
        'apiGroups: ["infra.llmdevops.io"], resources: [auditsinks], verbs: [watch]'
    )
    assert kube.CONFIGMAPS.api_version == "v1"


def test_a_forbidden_call_names_the_rule_to_add() -> None:
    status = {"code": 403, "message": 'secrets "x" is forbidden'}
    error = kube.status_error(status, "get", kube.SECRETS, "team-a", component="llm-infra-op")
    assert isinstance(error, errors.InsufficientPermissions)
    assert "bind llm-infra-op's account to a Role in that namespace" in error.message
    assert 'apiGroups: [""], resources: [secrets], verbs: [get]' in error.message
    everywhere = kube.status_error(status, "list", kube.SECRETS, None)
    assert "a ClusterRole" in everywhere.message
    missing = kube.status_error(
        {"code": 404, "message": "nope"}, "watch", kube.Kind.of(AuditSink), None
    )
    assert "is the CRD installed?" in missing.message
    gone = kube.status_error({"code": 410, "message": "too old"}, "watch", kube.CONFIGMAPS, None)
    assert kube.expired(gone)


def test_secrets_decode_data_and_string_data() -> None:
    secret = {
        "data": {"a": base64.b64encode(b"one").decode()},
        "stringData": {"b": "two"},
    }
    assert kube.decode_secret(secret) == {"a": "one", "b": "two"}
    assert json.dumps(kube.decode_secret({})) == "{}"
