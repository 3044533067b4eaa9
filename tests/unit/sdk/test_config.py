"""llm_infra.config without a network: precedence, error details, dot keys, the watcher."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import httpx
import pydantic
import pytest

from llm_infra import config, errors

SECRET = "hunter2-very-secret"


class Pool(pydantic.BaseModel):
    size: int = 1


class Db(pydantic.BaseModel):
    host: str = "localhost"
    pool_size: int = 2
    pool: Pool = Pool()
    password: pydantic.SecretStr = pydantic.SecretStr("")


class Settings(config.InfraSettings):
    name: str = "default"
    db: Db = Db()
    labels: dict[str, str] = pydantic.Field(default_factory=dict)
    hosts: list[str] = pydantic.Field(default_factory=list)
    api_key: pydantic.SecretStr | None = None


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.upper().startswith("LLM_INFRA_"):
            monkeypatch.delenv(name)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_all_is_complete() -> None:
    public = {name for name in vars(config) if not name.startswith("_")}
    modules = {"annotations"} | {name for name in public if name.startswith("_")}
    assert set(config.__all__) == public - modules - {"_access", "_settings", "_sources", "_watch"}


def test_precedence_is_data_highest_first() -> None:
    assert config.PRECEDENCE == ("init", "env", "sources", "vault", "files")


def test_defaults_when_no_source_sets_a_field() -> None:
    settings = config.load_settings(Settings)
    assert settings.name == "default"
    assert settings.db.pool_size == 2


def test_later_file_beats_earlier_and_merges_deeply(tmp_path: Path) -> None:
    base = write(tmp_path / "base.toml", 'name = "base"\n[db]\nhost = "h1"\npool_size = 3\n')
    prod = write(tmp_path / "prod.yaml", "db:\n  pool_size: 4\n")
    extra = write(tmp_path / "extra.json", json.dumps({"name": "json"}))
    settings = config.load_settings(Settings, files=[base, prod, extra])
    assert (settings.name, settings.db.host, settings.db.pool_size) == ("json", "h1", 4)


def test_env_beats_file_and_nests_with_double_underscore(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = write(tmp_path / "base.toml", "[db]\npool_size = 3\n[db.pool]\nsize = 5\n")
    monkeypatch.setenv("LLM_INFRA_DB__POOL_SIZE", "7")
    monkeypatch.setenv("LLM_INFRA_DB__POOL__SIZE", "9")
    settings = config.load_settings(Settings, files=[base])
    assert settings.db.pool_size == 7
    assert settings.db.pool.size == 9


def test_env_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_INFRA_NAME", "from-env")
    assert config.load_settings(Settings, env=False).name == "default"


def test_init_beats_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = write(tmp_path / "base.toml", 'name = "file"\n')
    monkeypatch.setenv("LLM_INFRA_NAME", "env")
    source = config.HttpJsonSource(
        url="http://cp.test/config",
        transport=httpx.MockTransport(lambda _: httpx.Response(200, json={"name": "served"})),
    )
    settings = config.load_settings(Settings, files=[base], sources=[source], init={"name": "init"})
    assert settings.name == "init"
    assert config.load_settings(Settings, files=[base], sources=[source]).name == "env"
    monkeypatch.delenv("LLM_INFRA_NAME")
    assert config.load_settings(Settings, files=[base], sources=[source]).name == "served"


def test_wrong_type_from_env_names_variable_and_types(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_INFRA_DB__POOL_SIZE", SECRET)
    with pytest.raises(errors.ConfigError) as caught:
        config.load_settings(Settings)
    error = caught.value
    assert error.key == "db.pool_size"
    assert "LLM_INFRA_DB__POOL_SIZE" in str(error)
    assert "expected int, got str" in str(error)
    assert SECRET not in str(error)
    assert SECRET not in repr(error)


def test_wrong_type_from_file_names_the_file(tmp_path: Path) -> None:
    base = write(tmp_path / "base.yaml", "db:\n  pool:\n    size: [1, 2]\n")
    with pytest.raises(errors.ConfigError) as caught:
        config.load_settings(Settings, files=[base])
    assert caught.value.key == "db.pool.size"
    assert f"file {base}" in str(caught.value)
    assert "expected int, got list" in str(caught.value)


def test_every_invalid_key_is_listed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = write(tmp_path / "base.json", json.dumps({"hosts": "not-a-list"}))
    monkeypatch.setenv("LLM_INFRA_DB__POOL_SIZE", "x")
    with pytest.raises(errors.ConfigError) as caught:
        config.load_settings(Settings, files=[base])
    message = str(caught.value)
    assert "(and 1 more)" in message
    assert "hosts (from file" in message
    assert "db.pool_size (from env LLM_INFRA_DB__POOL_SIZE)" in message


def test_required_field_missing_is_named() -> None:
    class Needs(config.InfraSettings):
        endpoint: str

    with pytest.raises(errors.ConfigError) as caught:
        config.load_settings(Needs)
    assert caught.value.key == "endpoint"
    assert "endpoint (required, str) is not set" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "text", "data_format", "line"),
    [
        ("bad.toml", 'name = "ok"\ndb = {\nhost = 1\n', errors.SerializationFormat.TOML, 2),
        ("end.toml", "name = [1,\n", errors.SerializationFormat.TOML, 1),
        ("bad.yaml", "name: ok\nhosts: [a\nlabels: {}\n", errors.SerializationFormat.YAML, 3),
        ("bad.json", '{\n  "name": "ok",\n}\n', errors.SerializationFormat.JSON, 3),
    ],
)
def test_malformed_file_names_file_and_line(
    tmp_path: Path, name: str, text: str, data_format: errors.SerializationFormat, line: int
) -> None:
    path = write(tmp_path / name, text)
    with pytest.raises(errors.SerializationError) as caught:
        config.load_settings(Settings, files=[path])
    assert caught.value.data_format is data_format
    assert caught.value.location is not None
    assert caught.value.location.startswith(f"{path}, line {line}")
    assert str(path) in str(caught.value)


def test_malformed_yaml_does_not_quote_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yaml", f"api_key: {SECRET}\nhosts: [a\n")
    with pytest.raises(errors.SerializationError) as caught:
        config.load_settings(Settings, files=[path])
    assert SECRET not in str(caught.value)


def test_file_must_hold_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path / "list.json", "[1, 2]")
    with pytest.raises(errors.ConfigError, match="expected a mapping"):
        config.load_settings(Settings, files=[path])


def test_missing_file_is_an_io_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(errors.IoError) as caught:
        config.load_settings(Settings, files=[tmp_path / "absent.toml"])
    assert caught.value.path == str(tmp_path / "absent.toml")


def test_unknown_file_type(tmp_path: Path) -> None:
    with pytest.raises(errors.ConfigError, match="unknown settings file type"):
        config.load_settings(Settings, files=[write(tmp_path / "a.ini", "")])


def test_dot_key_access(tmp_path: Path) -> None:
    base = write(
        tmp_path / "base.yaml", "db:\n  pool:\n    size: 8\nlabels:\n  team: ml\nhosts: [a, b]\n"
    )
    settings = config.load_settings(Settings, files=[base])
    assert config.get(settings, "db.pool.size") == 8
    assert config.get(settings, "labels.team") == "ml"
    assert config.get(settings, "hosts.1") == "b"
    assert config.get(settings, "db.nope") is None
    assert config.get(settings, "hosts.5") is None
    assert config.get(settings, "db.model_dump") is None  # methods are not keys
    assert config.get_or(settings, "db.pool.missing", 3) == 3
    assert config.get_or(settings, "api_key", "unset") == "unset"  # None reads as absent
    assert config.require(settings, "db.host") == "localhost"
    with pytest.raises(errors.ConfigMissing) as caught:
        config.require(settings, "db.pool.depth")
    assert caught.value.key == "db.pool.depth"
    assert "db.pool.depth" in str(caught.value)


def test_secrets_are_masked(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("LLM_INFRA_API_KEY", SECRET)
    monkeypatch.setenv("LLM_INFRA_DB__PASSWORD", SECRET)
    settings = config.load_settings(Settings)
    assert settings.api_key is not None
    assert settings.api_key.get_secret_value() == SECRET
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("settings: %s %r", settings, settings)
    for shown in (repr(settings), str(settings), str(settings.model_dump()), caplog.text):
        assert SECRET not in shown
    assert "**********" in repr(settings)


def test_secret_of_wrong_type_is_not_quoted(tmp_path: Path) -> None:
    path = write(tmp_path / "a.json", json.dumps({"db": {"password": {"v": SECRET}}}))
    with pytest.raises(errors.ConfigError) as caught:
        config.load_settings(Settings, files=[path])
    assert caught.value.key == "db.password"
    assert "expected SecretStr, got dict" in str(caught.value)
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)


def test_http_json_source_errors() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/down":
            return httpx.Response(503)
        if request.url.path == "/list":
            return httpx.Response(200, json=[1])
        return httpx.Response(200, content=b"{\n oops")

    transport = httpx.MockTransport(answer)
    down = config.HttpJsonSource(url="http://cp.test/down", transport=transport)
    with pytest.raises(errors.HttpStatusError) as status:
        config.load_settings(Settings, sources=[down])
    assert status.value.is_retryable()
    with pytest.raises(errors.ConfigError, match="expected a JSON object"):
        config.HttpJsonSource(url="http://cp.test/list", transport=transport).read()
    with pytest.raises(errors.SerializationError, match="line 2"):
        config.HttpJsonSource(url="http://cp.test/bad", transport=transport).read()
    optional = config.HttpJsonSource(url="http://cp.test/down", transport=transport, optional=True)
    assert config.load_settings(Settings, sources=[optional]).name == "default"


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_http_json_source_stops_at_max_bytes(declared: bool) -> None:
    body = b'{"name": "' + b"x" * 2048 + b'"}'

    def answer(request: httpx.Request) -> httpx.Response:
        if declared:
            return httpx.Response(200, content=body)
        return httpx.Response(200, content=iter([body[:1024], body[1024:]]))  # no length

    transport = httpx.MockTransport(answer)
    small = config.HttpJsonSource(url="http://cp.test/big", transport=transport, max_bytes=1500)
    with pytest.raises(errors.ConfigError, match="larger than max_bytes") as caught:
        small.read()
    assert caught.value.key == "max_bytes"
    roomy = config.HttpJsonSource(url="http://cp.test/big", transport=transport, max_bytes=4096)
    assert roomy.read()["name"] == "x" * 2048


def test_sources_follow_the_protocol() -> None:
    auth = config.TokenAuth("t")
    vault = config.VaultSource(address="http://127.0.0.1:1", path="app", auth=auth)
    for source in (vault, config.HttpJsonSource(url="http://x"), config.FileSource(Path("a"))):
        assert isinstance(source, config.Source)
    assert "t" not in repr(auth).replace("TokenAuth", "")


# -- watcher -----------------------------------------------------------------------------------


def test_watcher_keeps_last_good_settings_on_invalid_update(tmp_path: Path) -> None:
    path = write(tmp_path / "app.toml", "[db]\npool_size = 3\n")
    watcher = config.watch(lambda: config.load_settings(Settings, files=[path]), paths=[path])
    applied: list[Settings] = []
    rejected: list[errors.InfraError] = []
    watcher.on_change(applied.append)
    watcher.on_error(rejected.append)
    good = watcher.current
    assert good.db.pool_size == 3

    write(path, '[db]\npool_size = "many"\n')
    assert watcher.reload() is good
    assert watcher.current is good
    assert isinstance(rejected[-1], errors.ConfigError)
    assert rejected[-1].key == "db.pool_size"
    assert watcher.last_error is rejected[-1]

    write(path, "[db\n")
    assert watcher.reload() is good
    assert isinstance(rejected[-1], errors.SerializationError)

    write(path, "[db]\npool_size = 4\n")
    assert watcher.reload().db.pool_size == 4
    assert applied == [watcher.current]
    assert watcher.last_error is None


def test_first_load_error_is_raised(tmp_path: Path) -> None:
    path = write(tmp_path / "app.toml", "[db\n")
    with pytest.raises(errors.SerializationError):
        config.watch(lambda: config.load_settings(Settings, files=[path]), paths=[path])


async def test_watcher_follows_real_file_changes(tmp_path: Path) -> None:
    path = write(tmp_path / "app.yaml", "db:\n  pool_size: 3\n")
    watcher = config.watch(
        lambda: config.load_settings(Settings, files=[path]), paths=[path], debounce_ms=50
    )
    rejected = asyncio.Event()
    watcher.on_error(lambda _: rejected.set())
    applied: asyncio.Queue[Settings] = asyncio.Queue()

    async def consume() -> None:
        async for settings in watcher:
            applied.put_nowait(settings)

    async def write_until_applied(pool_size: int) -> Settings:
        # The watch starts a moment after the task does: write until the change is noticed
        # (a repeated write may be applied twice: skip updates until the wanted one).
        while True:
            write(path, f"db:\n  pool_size: {pool_size}\n")
            try:
                async with asyncio.timeout(0.5):
                    while (settings := await applied.get()).db.pool_size != pool_size:
                        pass
                    return settings
            except TimeoutError:
                continue

    consumer = asyncio.create_task(consume())
    async with asyncio.timeout(20):
        await write_until_applied(5)
        assert watcher.current.db.pool_size == 5

        # An invalid write is reported and skipped; the next valid one comes through.
        write(path, "db:\n  pool_size: [\n")
        await rejected.wait()
        assert watcher.current.db.pool_size == 5
        assert (await write_until_applied(6)).db.pool_size == 6
        watcher.stop()
        await consumer
