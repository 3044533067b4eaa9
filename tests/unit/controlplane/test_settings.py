"""The control plane's settings: one precedence (flags > env > file > defaults), errors, docs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from llm_infra import errors
from llm_infra_controlplane import settings as settings_module
from llm_infra_controlplane.access.admin_key import issue_api_key
from llm_infra_controlplane.settings import Settings
from tests.corpus import REPO


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("LLM_INFRA_")]:
        monkeypatch.delenv(name)


def _file(tmp_path: Path, **values: object) -> Path:
    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def test_flags_beat_the_environment_which_beats_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = _file(tmp_path, port=7000, log_level="debug", nats_url="nats://from-file:4222")
    monkeypatch.setenv("LLM_INFRA_PORT", "7100")
    loaded = settings_module.load(flags={"port": 7200, "host": None}, settings_file=file)
    assert loaded.port == 7200  # flag
    assert loaded.log_level == "debug"  # file (no variable, no flag)
    assert loaded.nats_url == "nats://from-file:4222"
    assert loaded.host == "127.0.0.1"  # a flag left unset does not override: the default
    monkeypatch.setenv("LLM_INFRA_SETTINGS_FILE", str(file))
    assert settings_module.load().port == 7100  # the variable beats the file it names


async def test_records_rules_and_nested_otel_come_from_file_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, record = await issue_api_key("operator")
    rule = {"subjects": ["apikey:operator"], "kinds": ["collections"], "actions": ["admin"]}
    file = _file(
        tmp_path, api_keys=[record.model_dump(mode="json")], access_rules=[rule], auth_mode="jwt"
    )
    monkeypatch.setenv("LLM_INFRA_OTEL__EXPORTER", "otlp-http")
    monkeypatch.setenv("LLM_INFRA_OTEL__ENDPOINT", "http://collector:4318")
    monkeypatch.setenv("LLM_INFRA_JWT_JWKS_URL", "https://idp.example/jwks.json")
    loaded = settings_module.load(settings_file=file)
    assert loaded.api_keys == (record,)
    assert loaded.access_rules[0].actions == ("admin",)
    assert (loaded.otel.exporter, loaded.otel.endpoint) == ("otlp-http", "http://collector:4318")
    assert loaded.jwt.jwks_url == "https://idp.example/jwks.json"


def test_a_bad_value_names_the_key_and_its_source_never_the_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLM_INFRA_PORT", "s3cret-not-a-port")
    with pytest.raises(errors.ConfigError) as caught:
        settings_module.load()
    assert "port (from env LLM_INFRA_PORT)" in caught.value.message
    assert "s3cret-not-a-port" not in caught.value.message


def test_serve_names_every_missing_setting() -> None:
    assert Settings(nats_url=None).serve_problems() == [
        "nats_url is not set: point it at NATS with JetStream"
        " (LLM_INFRA_NATS_URL=nats://nats:4222, or nats_url in the settings file)",
        "api_keys is empty with auth_mode api-key: nobody could call the API; provision key"
        " records (LLM_INFRA_API_KEYS, or api_keys in the settings file) or choose auth_mode jwt",
    ]
    jwt = Settings(nats_url="nats://n:4222", auth_mode="jwt", jwt_issuer="https://idp")
    assert [p.split(" ")[0] for p in jwt.serve_problems()] == ["jwt_jwks_url"]
    assert Settings(nats_url="nats://n:4222", auth_mode="none").serve_problems() == []


def test_every_setting_is_documented() -> None:
    documented = (REPO / "docs" / "controlplane.md").read_text()
    missing = [name for name in Settings.model_fields if f"`{name}`" not in documented]
    assert missing == [], f"docs/controlplane.md does not describe {missing}"
