"""The control plane's authn/authz without servers: access rules, API keys, the admin key file.

Requests go through `web.auth.require` on a small app of the same shape as the /v1
routers (ASGI transport, no socket), so the 401/403 problem documents are the real
ones `web.problems` answers. JWTs against a JWKS server are in the integration tests.
"""

from __future__ import annotations

import asyncio
import json
import logging
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pydantic
import pytest
from fastapi import APIRouter, FastAPI, Request

from llm_infra import auth, errors
from llm_infra_controlplane.access import admin_key, policy, service
from llm_infra_controlplane.main import start_security
from llm_infra_controlplane.settings import Settings
from llm_infra_controlplane.web import auth as web_auth
from llm_infra_controlplane.web import problems

OPERATOR = "llm-infra-operator"
THINGS = "/v1/namespaces/team-a/configs/app"


def _rule(**fields: Any) -> policy.AccessRule:
    return policy.AccessRule.model_validate(fields)


def _identity(subject: str = "apikey:alice", groups: tuple[str, ...] = ()) -> auth.Identity:
    return auth.Identity(subject=subject, kind="user", method="jwt", groups=groups)


# -- access rules --------------------------------------------------------------------------------


def test_rule_matches_namespace_and_kind_globs() -> None:
    rule = _rule(
        subjects=["apikey:alice"], namespaces=["team-*"], kinds=["configs"], actions=["read"]
    )
    assert rule.grants(_identity(), "team-a", "configs", "read")
    assert not rule.grants(_identity(), "prod", "configs", "read")
    assert not rule.grants(_identity(), "team-a", "collections", "read")
    assert not rule.grants(_identity("bob"), "team-a", "configs", "read")


def test_rights_nest_write_includes_read_admin_includes_all() -> None:
    writer = _rule(subjects=["apikey:alice"], actions=["write"])
    admin = _rule(subjects=["apikey:alice"], actions=["admin"])
    assert writer.grants(_identity(), "ns", "configs", "read")
    assert writer.grants(_identity(), "ns", "configs", "write")
    assert not writer.grants(_identity(), "ns", "collections", "admin")
    assert all(
        admin.grants(_identity(), "ns", "x", action) for action in ("read", "write", "admin")
    )


def test_rule_by_group_and_for_everyone() -> None:
    by_group = _rule(groups=["ml"], actions=["read"])
    assert by_group.grants(_identity("bob", ("ml",)), "ns", "configs", "read")
    assert not by_group.grants(_identity("ml"), "ns", "configs", "read")  # a subject is no group
    everyone = _rule(subjects=["*"], actions=["read"])
    assert everyone.grants(_identity("anyone"), "ns", "configs", "read")


def test_a_request_outside_namespaces_needs_a_rule_for_every_namespace() -> None:
    assert not _rule(subjects=["apikey:alice"], namespaces=["team-*"], actions=["read"]).grants(
        _identity(), None, "configs", "read"
    )
    assert _rule(subjects=["apikey:alice"], actions=["read"]).grants(
        _identity(), None, "configs", "read"
    )


def test_a_rule_names_someone_and_some_action() -> None:
    with pytest.raises(pydantic.ValidationError, match="subjects or groups"):
        _rule(actions=["read"])
    with pytest.raises(pydantic.ValidationError, match="actions"):
        _rule(subjects=["apikey:alice"], actions=[])
    with pytest.raises(pydantic.ValidationError, match="actions"):
        _rule(subjects=["apikey:alice"], actions=["delete"])


def test_forbidden_names_subject_namespace_kind_action_and_the_fix() -> None:
    guard = service.Security("jwt", rules=(_rule(subjects=["apikey:alice"], actions=["read"]),))
    guard.authorize(_identity(), "team-a", "configs", "read")
    with pytest.raises(errors.InsufficientPermissions) as caught:
        guard.authorize(_identity(), "team-a", "configs", "write")
    message = str(caught.value)
    for part in ("'apikey:alice'", "write", "configs", "'team-a'", "access rule"):
        assert part in message
    assert caught.value.status == 403


# -- the admin key file --------------------------------------------------------------------------


async def test_admin_key_is_printed_once_and_only_its_hash_is_stored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = await admin_key.ensure_admin_key(tmp_path)
    printed = capsys.readouterr().out
    key = _printed_key(printed)
    path = admin_key.admin_key_path(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = path.read_text()
    assert key.split("_", 2)[2] not in stored
    assert json.loads(stored)["secret_hash"].startswith("$argon2id$")

    again = await admin_key.ensure_admin_key(tmp_path)
    later = capsys.readouterr().out
    assert again == first
    assert key not in later
    assert "admin key: (stored; see the first start or rotate with" in later

    # The printed key is the stored one.
    guard = service.Security("api-key", api_keys=_authenticator(again), admin_key_id=again.key_id)
    identity = await guard.authenticate({"Authorization": f"Bearer {key}"})
    assert identity.subject == f"apikey:{admin_key.ADMIN_KEY_OWNER}"


async def test_rotating_the_admin_key_retires_the_old_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await admin_key.ensure_admin_key(tmp_path)
    old = _printed_key(capsys.readouterr().out)
    await admin_key.rotate_admin_key(tmp_path)
    new = _printed_key(capsys.readouterr().out)
    assert new != old

    record = await admin_key.ensure_admin_key(tmp_path)
    guard = service.Security("api-key", api_keys=_authenticator(record))
    assert (await guard.authenticate({"Authorization": f"Bearer {new}"})).claims[
        "key_id"
    ] == record.key_id
    with pytest.raises(errors.InvalidCredentials):
        await guard.authenticate({"Authorization": f"Bearer {old}"})


async def test_a_corrupt_admin_key_file_names_the_file_and_the_fix(tmp_path: Path) -> None:
    admin_key.admin_key_path(tmp_path).write_text("{}")
    with pytest.raises(errors.ConfigError, match="rotate-admin-key") as caught:
        await admin_key.ensure_admin_key(tmp_path)
    assert admin_key.ADMIN_KEY_FILE in str(caught.value)


def _printed_key(out: str) -> str:
    lines = [line for line in out.splitlines() if line.startswith("admin key: ")]
    assert len(lines) == 1, out
    key = lines[0].removeprefix("admin key: ")
    assert key.startswith(f"{auth.DEFAULT_PREFIX}_")
    return key


def _authenticator(*records: auth.ApiKeyRecord) -> auth.ApiKeyAuthenticator:
    store = auth.InMemoryApiKeyStore()
    store.records.update({record.key_id: record for record in records})
    return auth.ApiKeyAuthenticator(store)


# -- the router dependency, on a small app of the /v1 shape --------------------------------------


def _app(settings: Settings) -> FastAPI:
    app = FastAPI()
    problems.install(app)
    configs = APIRouter(prefix="/v1/namespaces/{namespace}/configs")
    collections = APIRouter(prefix="/v1/namespaces/{namespace}/collections")

    @configs.get("/{name}")
    async def read(request: Request) -> dict[str, str]:
        # What deps.PrincipalDep hands a route (deps imports every service: see integration).
        return {"subject": request.state.principal.subject}

    @configs.put("/{name}")
    async def write() -> dict[str, str]:
        return {}

    @configs.post("/{name}/search", openapi_extra=policy.READ_ONLY_ROUTE)
    async def search() -> dict[str, str]:
        return {}

    @collections.delete("/{name}")
    async def drop() -> dict[str, str]:
        return {}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(configs, dependencies=[web_auth.require("configs")])
    app.include_router(collections, dependencies=[web_auth.require("collections", writes="admin")])
    app.state.settings = settings
    return app


class Keys:
    def __init__(self, admin: str, reader: str, writer: str, operator: str) -> None:
        self.admin, self.reader, self.writer, self.operator = admin, reader, writer, operator


@pytest.fixture(scope="module")
def provisioned() -> dict[str, tuple[pydantic.SecretStr, auth.ApiKeyRecord]]:
    # argon2id makes each key cost a fraction of a second: issue them once per module.
    async def issue() -> dict[str, tuple[pydantic.SecretStr, auth.ApiKeyRecord]]:
        return {
            owner: await admin_key.issue_api_key(owner) for owner in ("reader", "writer", OPERATOR)
        }

    return asyncio.run(issue())


@pytest.fixture
async def keys_and_http(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    provisioned: dict[str, tuple[pydantic.SecretStr, auth.ApiKeyRecord]],
) -> AsyncIterator[tuple[Keys, httpx.AsyncClient]]:
    reader, writer, operator = (provisioned[owner][0] for owner in ("reader", "writer", OPERATOR))
    settings = Settings(
        data_dir=tmp_path,
        api_keys=tuple(record for _, record in provisioned.values()),
        access_rules=(
            _rule(
                subjects=["apikey:reader"],
                namespaces=["team-a"],
                kinds=["configs"],
                actions=["read"],
            ),
            _rule(subjects=["apikey:writer"], namespaces=["team-*"], actions=["write"]),
            _rule(subjects=[f"apikey:{OPERATOR}"], kinds=["collections"], actions=["admin"]),
        ),
    )
    app = _app(settings)
    app.state.security = await start_security(settings)
    admin = _printed_key(capsys.readouterr().out)
    keys = Keys(
        admin,
        reader.get_secret_value(),
        writer.get_secret_value(),
        operator.get_secret_value(),
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cp") as http:
        yield keys, http


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
    return body


async def test_no_credentials_answer_401_with_www_authenticate(
    keys_and_http: tuple[Keys, httpx.AsyncClient],
) -> None:
    _, http = keys_and_http
    body = _assert_problem(await http.get(THINGS), 401, "auth.missing_credentials")
    assert "Authorization: Bearer" in body["detail"]


async def test_bad_credentials_answer_401_and_never_echo_the_key(
    keys_and_http: tuple[Keys, httpx.AsyncClient],
) -> None:
    keys, http = keys_and_http
    tampered = keys.reader[:-4] + ("AAAA" if not keys.reader.endswith("AAAA") else "BBBB")
    for headers in (
        _bearer(tampered),
        _bearer(f"{auth.DEFAULT_PREFIX}_0123456789abcdef_unknown"),
        _bearer(f"{auth.DEFAULT_PREFIX}_malformed"),
        {"Authorization": f"Basic {keys.reader}"},
    ):
        response = await http.get(THINGS, headers=headers)
        _assert_problem(response, 401, "auth.invalid_credentials")
        assert keys.reader.split("_", 2)[2][:-4] not in response.text


async def test_api_key_mode_refuses_a_jwt_naming_the_mode(
    keys_and_http: tuple[Keys, httpx.AsyncClient],
) -> None:
    _, http = keys_and_http
    body = _assert_problem(
        await http.get(THINGS, headers=_bearer("eyJhbGciOiJSUzI1NiJ9.e30.c2ln")),
        401,
        "auth.invalid_credentials",
    )
    # Whole, as written: the redactor once masked "send" and "Bearer" in it.
    assert body["detail"] == (
        "send 'Authorization: Bearer <token>' with an API key (llmi_...) (auth_mode api-key)"
    )


async def test_rights_decide_per_namespace_kind_and_action(
    keys_and_http: tuple[Keys, httpx.AsyncClient],
) -> None:
    keys, http = keys_and_http
    reader = _bearer(keys.reader)
    response = await http.get(THINGS, headers=reader)
    assert response.status_code == 200
    assert response.json() == {"subject": "apikey:reader"}
    # A POST that only reads needs read.
    assert (await http.post(f"{THINGS}/search", headers=reader)).status_code == 200

    body = _assert_problem(
        await http.put(THINGS, headers=reader), 403, "auth.insufficient_permissions"
    )
    assert "write configs in namespace 'team-a'" in body["detail"]
    body = _assert_problem(
        await http.get("/v1/namespaces/team-b/configs/app", headers=reader),
        403,
        "auth.insufficient_permissions",
    )
    assert "read configs in namespace 'team-b'" in body["detail"]


async def test_the_collection_admin_api_needs_admin(
    keys_and_http: tuple[Keys, httpx.AsyncClient],
) -> None:
    keys, http = keys_and_http
    url = "/v1/namespaces/team-a/collections/docs"
    writer = _bearer(keys.writer)
    assert (await http.put(THINGS, headers=writer)).status_code == 200
    body = _assert_problem(
        await http.delete(url, headers=writer), 403, "auth.insufficient_permissions"
    )
    assert "admin collections" in body["detail"]
    assert (await http.delete(url, headers=_bearer(keys.operator))).status_code == 200
    # The operator's grant is for collections only.
    _assert_problem(
        await http.put(THINGS, headers=_bearer(keys.operator)), 403, "auth.insufficient_permissions"
    )


async def test_the_admin_key_may_do_everything_everywhere(
    keys_and_http: tuple[Keys, httpx.AsyncClient],
) -> None:
    keys, http = keys_and_http
    admin = _bearer(keys.admin)
    assert (await http.delete("/v1/namespaces/prod/collections/x", headers=admin)).is_success
    assert (await http.put("/v1/namespaces/prod/configs/x", headers=admin)).is_success
    # The key is also accepted in X-API-Key, which llm_infra.auth parses.
    assert (await http.get(THINGS, headers={"X-API-Key": keys.admin})).is_success


async def test_health_stays_open(keys_and_http: tuple[Keys, httpx.AsyncClient]) -> None:
    _, http = keys_and_http
    assert (await http.get("/healthz")).status_code == 200


async def test_the_openapi_document_declares_bearer_auth(
    keys_and_http: tuple[Keys, httpx.AsyncClient],
) -> None:
    _, http = keys_and_http
    document = (await http.get("/openapi.json")).json()
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    search = document["paths"]["/v1/namespaces/{namespace}/configs/{name}/search"]["post"]
    assert search[policy.ACTION_EXTRA] == "read"


async def test_mode_none_lets_everyone_in_and_warns_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(data_dir=tmp_path, auth_mode="none")
    app = _app(settings)
    with caplog.at_level(logging.WARNING, logger=service.__name__):
        app.state.security = await start_security(settings)
    assert "auth_mode=none" in caplog.text
    assert "admin key" not in capsys.readouterr().out
    assert not admin_key.admin_key_path(tmp_path).exists()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cp") as http:
        response = await http.get(THINGS)
        assert response.json() == {"subject": policy.ANONYMOUS.subject}
        assert (await http.delete("/v1/namespaces/x/collections/y")).status_code == 200


async def test_no_admin_key_when_the_cluster_provisions_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await start_security(Settings(data_dir=tmp_path, standalone_admin_key=False))
    assert capsys.readouterr().out == ""
    assert not admin_key.admin_key_path(tmp_path).exists()


@pytest.mark.parametrize("mode", ["jwt", "api-key+jwt"])
async def test_jwt_modes_need_a_jwks_url_and_an_issuer(tmp_path: Path, mode: str) -> None:
    settings = Settings.model_validate({"data_dir": tmp_path, "auth_mode": mode})
    with pytest.raises(errors.ConfigError, match="jwt_jwks_url") as caught:
        await start_security(settings)
    assert caught.value.key == "jwt_jwks_url"
    settings = settings.model_copy(update={"jwt_jwks_url": "https://idp.test/jwks"})
    with pytest.raises(errors.ConfigError, match="jwt_issuer"):
        await start_security(settings)


async def test_a_verified_key_is_not_rehashed_but_still_checked_for_expiry(
    tmp_path: Path,
) -> None:
    key, record = await admin_key.issue_api_key("svc")
    authenticator = _authenticator(record)
    guard = service.Security("api-key", api_keys=authenticator)
    headers = _bearer(key.get_secret_value())
    assert (await guard.authenticate(headers)).subject == "apikey:svc"
    revoked = record.model_copy(update={"revoked_at": record.created_at})
    await authenticator.store.put(revoked)
    with pytest.raises(errors.InvalidCredentials, match="revoked"):
        await guard.authenticate(headers)


def test_security_repr_shows_no_secret() -> None:
    assert repr(service.Security("api-key")) == "Security(mode='api-key', rules=0)"


async def test_a_burst_with_a_new_key_pays_one_argon2_check(key_checks: list[str]) -> None:
    key, record = await admin_key.issue_api_key("svc")
    guard = service.Security("api-key", api_keys=_authenticator(record))
    headers = {"authorization": f"Bearer {key.get_secret_value()}"}
    # The burst that follows a start: all arrive before the first check is done.
    identities = await asyncio.gather(*(guard.authenticate(headers) for _ in range(20)))
    assert {identity.subject for identity in identities} == {"apikey:svc"}
    assert key_checks == ["argon2id"]
    await guard.authenticate(headers)  # and later requests hit the cache
    assert key_checks == ["argon2id"]
