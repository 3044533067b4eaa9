"""llm_infra.config against a real OpenBao dev server (token auth) and a real local HTTP server.

Kubernetes auth is not exercised: OpenBao's kubernetes method would have to
call the test API server's TokenReview with a reviewer JWT and its CA, more
wiring than this suite has; `KubernetesAuth` is only constructed here.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import hvac
import pydantic
import pytest

from llm_infra import config, errors
from tests.servers._process import free_port
from tests.servers.documents import DocumentServer
from tests.servers.openbao import OpenBao


class Db(pydantic.BaseModel):
    host: str = "localhost"
    password: pydantic.SecretStr = pydantic.SecretStr("")


class Settings(config.InfraSettings):
    name: str = "default"
    pool_size: int = 1
    db: Db = Db()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("LLM_INFRA_"):
            monkeypatch.delenv(name)


@pytest.fixture
def secret_path(bao: OpenBao) -> str:
    """A fresh KV v2 path holding the app's settings."""
    path = f"apps/{uuid.uuid4().hex[:8]}"
    client = hvac.Client(url=bao.url, token=bao.token)
    client.secrets.kv.v2.create_or_update_secret(
        path=path, mount_point="secret", secret={"name": "from-vault", "pool_size": 4}
    )
    client.secrets.kv.v2.create_or_update_secret(
        path=f"{path}/db", mount_point="secret", secret={"password": "s3cr3t-from-bao"}
    )
    client.adapter.close()
    return path


def vault(bao: OpenBao, path: str, **options: object) -> config.VaultSource:
    return config.VaultSource(
        address=bao.url,
        path=path,
        auth=config.TokenAuth(bao.token),
        **options,  # type: ignore[arg-type]
    )


def unreachable(**options: object) -> config.VaultSource:
    return config.VaultSource(
        address=f"http://127.0.0.1:{free_port()}",
        path="apps/x",
        auth=config.TokenAuth("t"),
        timeout=2.0,
        **options,  # type: ignore[arg-type]
    )


def test_kv_secret_feeds_settings(bao: OpenBao, secret_path: str) -> None:
    settings = config.load_settings(Settings, vault=vault(bao, secret_path))
    assert (settings.name, settings.pool_size) == ("from-vault", 4)


def test_secret_under_a_key_is_masked(bao: OpenBao, secret_path: str) -> None:
    settings = config.load_settings(Settings, vault=vault(bao, f"{secret_path}/db", key="db"))
    assert settings.db.password.get_secret_value() == "s3cr3t-from-bao"
    assert "s3cr3t-from-bao" not in repr(settings)


def test_env_overrides_vault(
    bao: OpenBao, secret_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLM_INFRA_POOL_SIZE", "9")
    settings = config.load_settings(Settings, vault=vault(bao, secret_path))
    assert (settings.name, settings.pool_size) == ("from-vault", 9)


def test_vault_beats_files_and_invalid_vault_value_names_the_path(
    bao: OpenBao, secret_path: str, tmp_path: Path
) -> None:
    file = tmp_path / "app.toml"
    file.write_text('name = "file"\npool_size = 2\n')
    settings = config.load_settings(Settings, files=[file], vault=vault(bao, secret_path))
    assert settings.name == "from-vault"

    client = hvac.Client(url=bao.url, token=bao.token)
    client.secrets.kv.v2.create_or_update_secret(
        path=f"{secret_path}/bad", mount_point="secret", secret={"pool_size": "lots"}
    )
    client.adapter.close()
    with pytest.raises(errors.ConfigError) as caught:
        config.load_settings(Settings, vault=vault(bao, f"{secret_path}/bad"))
    assert caught.value.key == "pool_size"
    assert f"vault {bao.url} secret/{secret_path}/bad" in str(caught.value)


def test_missing_secret_and_bad_token(bao: OpenBao) -> None:
    with pytest.raises(errors.NotFound):
        config.load_settings(Settings, vault=vault(bao, "apps/absent"))
    wrong = config.VaultSource(address=bao.url, path="apps/x", auth=config.TokenAuth("nope"))
    with pytest.raises(errors.InsufficientPermissions):
        config.load_settings(Settings, vault=wrong)


def test_unreachable_openbao_is_retryable_and_optional_skips_it() -> None:
    with pytest.raises(errors.HttpConnectError) as caught:
        config.load_settings(Settings, vault=unreachable())
    assert caught.value.is_retryable()
    assert config.load_settings(Settings, vault=unreachable(optional=True)).name == "default"


def test_watcher_keeps_last_good_config_when_openbao_goes_away(
    bao: OpenBao, secret_path: str
) -> None:
    source = {"vault": vault(bao, secret_path)}
    watcher = config.watch(lambda: config.load_settings(Settings, vault=source["vault"]))
    rejected: list[errors.InfraError] = []
    watcher.on_error(rejected.append)
    good = watcher.current
    assert good.name == "from-vault"

    source["vault"] = unreachable()
    assert watcher.reload() is good
    assert isinstance(rejected[-1], errors.HttpConnectError)
    assert rejected[-1].is_retryable()

    source["vault"] = vault(bao, secret_path)
    assert watcher.reload() is not good
    assert watcher.last_error is None


def test_kubernetes_auth_is_configurable_only() -> None:
    auth = config.KubernetesAuth(role="app", jwt="eyJhbGciOi.eyJzdWIiOi.sig")
    assert "eyJ" not in repr(auth)
    assert auth.jwt_path == config.DEFAULT_SERVICE_ACCOUNT_TOKEN


# -- HttpJsonSource against a real local server ------------------------------------------------


def test_http_json_source_from_a_real_server(
    served: DocumentServer, bao: OpenBao, secret_path: str
) -> None:
    served.documents["/v1/config"] = json.dumps({"name": "served", "pool_size": 6}).encode()
    source = config.HttpJsonSource(url=f"{served.url}/v1/config")
    settings = config.load_settings(Settings, sources=[source], vault=vault(bao, secret_path))
    assert (settings.name, settings.pool_size) == ("served", 6)  # served beats vault
    with pytest.raises(errors.HttpStatusError) as caught:
        config.load_settings(Settings, sources=[config.HttpJsonSource(url=f"{served.url}/x")])
    assert caught.value.status_code == 404
