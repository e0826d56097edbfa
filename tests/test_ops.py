"""Operations: /healthz, /readyz, /metrics (byok_core/metrics.py), routes under a base path, and
roles from single sign-on groups (accounts.apply_oidc_role)."""

from __future__ import annotations

import threading
from pathlib import Path

import prometheus_client
import pytest
import sqlalchemy as sa
from apptest import app_test, clear_runtime, make_user, open_page, use_environment
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from byok_core import accounts, audit, db, keys, metrics, pricing
from byok_core.crypto import gen_key
from byok_core.errors import CallStatus
from byok_core.identity import Actor, KeySource, Owner, Role
from byok_core.providers import Provider
from byok_core.record import CallRecord
from byok_core.startup import open_runtime
from byok_ui import server, state
from byok_ui.server import ROUTES, SecurityHeaders

TOKEN = "scrape-token-7d41c0b9e2f35a68"


@pytest.fixture
def client(monkeypatch, environ, rt):
    use_environment(monkeypatch, environ)  # the routes open the same database as `rt`
    monkeypatch.delenv(metrics.TOKEN_ENV, raising=False)
    yield TestClient(Starlette(routes=ROUTES, middleware=[Middleware(SecurityHeaders)]), base_url="http://testserver")
    clear_runtime()


def sample(name: str, **labels: str) -> float:
    return metrics.registry().get_sample_value(name, labels) or 0.0


# --- metrics.observe --------------------------------------------------------------------------


def test_observe_counts_calls_errors_latency_and_known_spend():
    openai = {"provider": "openai"}
    before = {
        "ok": sample("byok_provider_calls_total", **openai, kind="chat", status="ok"),
        "limited": sample("byok_provider_calls_total", **openai, kind="chat", status="rate_limited"),
        "errors": sample("byok_provider_errors_total", **openai, status="rate_limited"),
        "count": sample("byok_provider_call_duration_seconds_count", **openai),
        "sum": sample("byok_provider_call_duration_seconds_sum", **openai),
        "le1": sample("byok_provider_call_duration_seconds_bucket", **openai, le="1.0"),
        "team": sample("byok_spend_usd_total", **openai, key_source="team"),
        "user": sample("byok_spend_usd_total", **openai, key_source="user"),
    }
    metrics.observe(CallRecord(Provider.OPENAI, KeySource.TEAM, "gpt-4o-mini", 1, cost_usd=0.25, latency_ms=800))
    metrics.observe(CallRecord(Provider.OPENAI, KeySource.USER, "gpt-4o-mini", 1, cost_usd=None, latency_ms=3000,
                               status=CallStatus.RATE_LIMITED))
    assert sample("byok_provider_calls_total", **openai, kind="chat", status="ok") == before["ok"] + 1
    assert sample("byok_provider_calls_total", **openai, kind="chat", status="rate_limited") == before["limited"] + 1
    assert sample("byok_provider_errors_total", **openai, status="rate_limited") == before["errors"] + 1
    assert sample("byok_provider_call_duration_seconds_count", **openai) == before["count"] + 2
    assert sample("byok_provider_call_duration_seconds_sum", **openai) == pytest.approx(before["sum"] + 3.8)
    assert sample("byok_provider_call_duration_seconds_bucket", **openai, le="1.0") == before["le1"] + 1
    assert sample("byok_spend_usd_total", **openai, key_source="team") == pytest.approx(before["team"] + 0.25)
    assert sample("byok_spend_usd_total", **openai, key_source="user") == before["user"]  # unknown cost adds nothing


def test_observe_tells_searches_and_key_tests_apart():
    search = sample("byok_provider_calls_total", provider="tavily", kind="search", status="ok")
    tests = sample("byok_provider_calls_total", provider="tavily", kind="key_test", status="key_rejected")
    metrics.observe(CallRecord(Provider.TAVILY, KeySource.ENV, cost_usd=0.008))
    metrics.observe(CallRecord(Provider.TAVILY, KeySource.USER, status=CallStatus.KEY_REJECTED), key_test=True)
    assert sample("byok_provider_calls_total", provider="tavily", kind="search", status="ok") == search + 1
    assert sample("byok_provider_calls_total", provider="tavily", kind="key_test", status="key_rejected") == tests + 1


def test_odd_costs_never_break_a_call():
    for cost in (0.0, -1.0, float("nan"), float("inf")):
        metrics.observe(CallRecord(Provider.BRAVE, KeySource.TEAM, cost_usd=cost))
    assert sample("byok_spend_usd_total", provider="brave", key_source="team") == 0.0


def test_metrics_live_in_a_registry_of_their_own():
    metrics.observe(CallRecord(Provider.SERPER, KeySource.ENV))
    assert metrics.registry() is not prometheus_client.REGISTRY
    assert b"byok_provider_calls_total" in metrics.exposition()[0]
    assert b"byok_" not in prometheus_client.generate_latest(prometheus_client.REGISTRY)


def test_metered_calls_are_observed(environ):
    from callhelpers import runtime_with
    from fakeproviders import FakeProvider

    from byok_core import keytest
    from byok_core.identity import Actor, Owner
    from byok_core.search import run_search

    labels = {"provider": "serper", "status": "ok"}
    searches = sample("byok_provider_calls_total", **labels, kind="search")
    tests = sample("byok_provider_calls_total", **labels, kind="key_test")
    spent = sample("byok_spend_usd_total", provider="serper", key_source="team")
    with FakeProvider(Provider.SERPER) as fake, runtime_with(environ, **fake.env()) as rt:
        keys.store(rt, Actor.operator(), Owner.team(), Provider.SERPER, "serper-team-key-0123456789")
        run_search(rt, user_id=None, provider=Provider.SERPER, query="cats")
        keytest.check(rt, Actor.operator(), Owner.team(), Provider.SERPER)
        price = pricing.search_price(rt, Provider.SERPER)
    assert sample("byok_provider_calls_total", **labels, kind="search") == searches + 1
    assert sample("byok_provider_calls_total", **labels, kind="key_test") == tests + 1
    assert price
    assert sample("byok_spend_usd_total", provider="serper", key_source="team") == pytest.approx(spent + price)


# --- GET /metrics ---------------------------------------------------------------------------


def test_metrics_need_the_bearer_token(client, monkeypatch):
    assert client.get("/metrics").status_code == 404  # no token configured: no endpoint
    monkeypatch.setenv(metrics.TOKEN_ENV, TOKEN)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
                    {"Authorization": f"Bearer {TOKEN}x"}, {"Authorization": "Bearer"},
                    {"Authorization": "Bearer caf\u00e9".encode("latin-1")}):
        r = client.get("/metrics", headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert "byok_provider" not in r.text
    metrics.observe(CallRecord(Provider.ANTHROPIC, KeySource.TEAM, "claude", cost_usd=0.5))
    r = client.get("/metrics", headers={"Authorization": f"bearer  {TOKEN}"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert r.headers["cache-control"] == "no-store"
    assert 'byok_spend_usd_total{key_source="team",provider="anthropic"}' in r.text
    assert "# TYPE byok_provider_call_duration_seconds histogram" in r.text
    assert TOKEN not in r.text


def _streamlit_behind_the_guard() -> TestClient:
    """What Streamlit serves at its /_stcore/metrics, behind the middleware streamlit_app.py adds."""
    async def streamlit_metrics(_request):
        return PlainTextResponse("streamlit stats")

    return TestClient(Starlette(routes=[Route("/team/_stcore/metrics", streamlit_metrics)],
                                middleware=[Middleware(server.StreamlitMetricsNeedToken)]))


def test_streamlit_metrics_answer_only_with_the_metrics_token(monkeypatch, under_team):
    """The running server's test (tests/e2e/test_streamlit_routes.py) sets a token; without one, 404."""
    monkeypatch.delenv(metrics.TOKEN_ENV, raising=False)
    client = _streamlit_behind_the_guard()
    assert client.get("/team/_stcore/metrics", headers={"Authorization": "Bearer x"}).status_code == 404
    monkeypatch.setenv(metrics.TOKEN_ENV, TOKEN)
    assert client.get("/team/_stcore/metrics").status_code == 401
    assert client.get("/team/_stcore/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text == "streamlit stats"


def cookie(token: str) -> dict[str, str]:
    return {"Cookie": f"{server.COOKIE_NAME}={token}"}


def test_streamlit_media_files_are_only_for_a_signed_in_browser(monkeypatch, environ, rt):
    """Downloads (the usage CSV, a conversation's Markdown) are served from /media/<id>: a copied
    link, another browser, or one signed out gets 404, exactly like an address that never was."""
    use_environment(monkeypatch, environ)
    files = Starlette(routes=[Route("/media/{name}", lambda _r: PlainTextResponse("timestamp,user,cost_usd"))],
                      middleware=[Middleware(server.MediaNeedsSession)])
    client = TestClient(files, base_url="http://testserver")
    ann = accounts.create_user(rt, Actor.operator(), "ann", "ann-password")
    token = accounts.create_session(rt, ann)
    try:
        assert client.get("/media/abc.csv").status_code == 404  # no cookie
        assert client.get("/media/abc.csv", headers=cookie("forged-token")).status_code == 404
        signed_in = client.get("/media/abc.csv", headers=cookie(token))
        assert signed_in.status_code == 200 and signed_in.text.startswith("timestamp")
        accounts.revoke_session(rt, token)  # signed out
        gone = client.get("/media/abc.csv", headers=cookie(token))
        assert gone.status_code == 404 and gone.headers["cache-control"] == "no-store"
    finally:
        clear_runtime()


# --- GET /healthz, /readyz --------------------------------------------------------------------


def test_healthz_answers_without_a_database(client, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "mysql://nowhere/db")  # not even a supported database
    clear_runtime()
    r = client.get("/healthz")
    assert r.status_code == 200 and r.text == "ok" and r.headers["cache-control"] == "no-store"


def test_readyz_when_everything_is_in_place(client):
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json() == {"ready": True}


def _set_version(rt, version: str) -> None:
    with rt.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": version})


def test_readyz_reports_migrations_that_are_not_current(client, rt):
    assert client.get("/readyz").status_code == 200
    _set_version(rt, "9999_from_the_future")  # as if a newer release had migrated the database further
    try:
        running = client.get("/readyz")
        clear_runtime()  # this replica restarts: opening it cannot migrate to an unknown revision
        restarted = client.get("/readyz")
    finally:
        _set_version(rt, db.head_revision())  # PostgreSQL tests share one migrated schema
    for r in (running, restarted):
        assert r.status_code == 503 and r.json() == {"ready": False, "reason": "database migrations are not current"}


def _refused(r, *secrets: str) -> str:
    assert r.status_code == 503 and r.headers["cache-control"] == "no-store"
    assert r.json()["ready"] is False and "Traceback" not in r.text
    assert not any(s in r.text for s in secrets)
    return str(r.json()["reason"])


def test_readyz_when_the_master_key_does_not_load(client, monkeypatch):
    bad = "not-a-master-key-0123456789abcdef"
    monkeypatch.setenv("ENCRYPTION_KEY", bad)
    clear_runtime()
    assert _refused(client.get("/readyz"), bad) == "master key does not load"


def test_readyz_when_the_database_is_unreachable(client, monkeypatch):
    password = "pg-password-never-shown"
    monkeypatch.setenv("DATABASE_URL", f"postgresql://byok:{password}@127.0.0.1:9/byok?connect_timeout=2")
    clear_runtime()
    assert _refused(client.get("/readyz"), password, "127.0.0.1") == "database unreachable"


def test_readyz_with_an_invalid_database_url(client, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "mysql://user:hunter22@db/byok")
    clear_runtime()
    assert _refused(client.get("/readyz"), "hunter22", "mysql") == "configuration is invalid"


def test_readyz_answers_in_time_and_runs_one_check_at_a_time(client, monkeypatch):
    release, calls = threading.Event(), []

    def hanging() -> str | None:
        calls.append(1)
        release.wait(10)
        return None

    monkeypatch.setattr(server, "readiness", hanging)
    monkeypatch.setattr(server, "READY_TIMEOUT", 0.2)
    try:
        for _ in range(3):
            assert _refused(client.get("/readyz")) == "readiness check timed out"
        assert len(calls) == 1  # the probes waited on the one check already running
    finally:
        release.set()


# --- a base path (server.baseUrlPath) ---------------------------------------------------------


@pytest.fixture
def under_team():
    from streamlit import config

    before = config.get_option("server.baseUrlPath")
    config.set_option("server.baseUrlPath", "/team/")
    yield
    config.set_option("server.baseUrlPath", before)


def test_routes_and_cookie_follow_the_base_path(client, rt, under_team, monkeypatch):
    assert server.app_path(server.SESSION_PATH) == "/team/byok/session"
    alice = make_user(rt, "alice")
    ticket = accounts.issue_login_ticket(rt, alice)
    assert client.post("/byok/session", json={"ticket": ticket, "binding": "b" * 43}).status_code == 404
    r = client.post("/team/byok/session", json={"ticket": ticket, "binding": "b" * 43},
                    headers={"Origin": "http://testserver"})
    assert r.status_code == 204 and "Path=/team;" in r.headers["set-cookie"]
    r = client.post("/team/byok/signout", json={}, headers={"Origin": "http://testserver"})
    assert r.status_code == 204 and "Path=/team;" in r.headers["set-cookie"] and "Max-Age=0" in r.headers["set-cookie"]
    assert client.get("/team/healthz").text == "ok" and client.get("/healthz").status_code == 404
    assert client.get("/team/readyz").status_code == 200
    monkeypatch.setenv(metrics.TOKEN_ENV, TOKEN)
    assert client.get("/team/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_without_a_base_path_the_cookie_is_for_the_whole_site(client, rt):
    ticket = accounts.issue_login_ticket(rt, make_user(rt, "alice"))
    r = client.post("/byok/session", json={"ticket": ticket, "binding": "b" * 43})
    assert r.status_code == 204 and "Path=/;" in r.headers["set-cookie"]
    assert server.app_path(server.SIGNOUT_PATH) == "/byok/signout"


def test_the_page_posts_the_ticket_under_the_base_path(app, rt, under_team):
    at = app_test()
    at.session_state["_byok_pending_ticket"] = "a-ticket"
    at.run()
    assert not at.exception
    scripts = [h.proto.body for h in at.get("html")]
    assert any('fetch("/team/byok/session"' in body for body in scripts), scripts
    assert state._post_js("/team/byok/signout", {}).startswith('<script>fetch("/team/byok/signout"')


# --- addresses that are no page ------------------------------------------------------------------


@pytest.fixture
def site(client):
    """The routes in front of a stand-in for Streamlit's own, which answer everything else (its
    files are mounted at the root), as in the app."""
    from starlette.routing import Mount

    async def streamlit(scope, receive, send):
        await PlainTextResponse("Streamlit")(scope, receive, send)

    app = Starlette(routes=[*ROUTES, Mount("/", app=streamlit)], middleware=[Middleware(SecurityHeaders)])
    return TestClient(app, base_url="http://testserver")


def goes(client: TestClient, path: str) -> str | None:
    """Where a GET of ``path`` is redirected, or None when Streamlit answers it."""
    r = client.get(path, follow_redirects=False)
    assert r.status_code == 302 or r.text == "Streamlit", (path, r.status_code)
    return r.headers["location"] if r.status_code == 302 else None


def test_an_address_that_is_no_page_goes_to_the_first_page_which_says_so(site):
    assert goes(site, "/chta") == "/?missing=chta"
    assert goes(site, "/chta/") == "/?missing=chta"
    assert goes(site, "/keys/extra") == "/?missing=keys%2Fextra"  # several parts: a blank page otherwise
    assert goes(site, "/caf%C3%A9") == "/?missing=caf%C3%A9" and goes(site, "/a%20b") == "/?missing=a+b"
    assert goes(site, "/" + "x" * 300) == "/?missing=" + "x" * 200
    assert goes(site, "/chat") == "/" and goes(site, "/chat?c=12") == "/?c=12"  # Chat is served at /
    assert goes(site, "/keys/") == "/keys"
    for through in ("/", "/keys", "/admin", "/signin", "/oauth2callback?code=x", "/_stcore/health", "/favicon.png",
                    "/static/js/index.js", "/media/abc.png", "/app/static/x.txt", "/auth/login",
                    "/keys/_stcore/health", "/keys/_stcore/stream", "/keys/static/js/index.js", "/keys/x.png"):
        assert goes(site, through) is None, through  # the app's pages, and Streamlit's own, answer as they are
    assert site.post("/chta").text == "Streamlit"  # only GETs are redirected


def test_under_a_base_path_the_redirect_stays_under_it(site, under_team):
    assert goes(site, "/team/chta") == "/team/?missing=chta"
    assert goes(site, "/team/chat") == "/team/"
    assert goes(site, "/team/keys") is None


# --- single sign-on returns to the page it started from ---------------------------------------


@pytest.fixture
def sso_client(monkeypatch, environ, rt):
    """Streamlit's own auth routes (not configured here: /auth/login and /oauth2callback both
    redirect to the app's first page, as the callback does after a sign-on) behind the middleware."""
    from starlette.middleware.sessions import SessionMiddleware
    from streamlit import config
    from streamlit.web.server.starlette.starlette_auth_routes import create_auth_routes

    use_environment(monkeypatch, environ)

    def make(base: str = "") -> TestClient:
        config.set_option("server.baseUrlPath", base)
        app = Starlette(routes=create_auth_routes(base), middleware=[
            Middleware(server.SignOnReturnsToPage), Middleware(SessionMiddleware, secret_key="test-only")])
        return TestClient(app, base_url="http://testserver")

    before = config.get_option("server.baseUrlPath")
    yield make
    config.set_option("server.baseUrlPath", before)
    clear_runtime()


def test_single_sign_on_returns_to_the_page_it_started_from(sso_client):
    client = sso_client()
    r = client.get("/auth/login?provider=default", headers={"Referer": "http://testserver/keys"},
                   follow_redirects=False)
    assert r.status_code == 302
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("byok_next=keys;") and "HttpOnly" in cookie and "Path=/;" in cookie
    r = client.get("/oauth2callback?code=x&state=y", follow_redirects=False)
    assert r.status_code == 302 and r.headers["location"] == "/keys"
    assert 'byok_next=""' in r.headers["set-cookie"] and "Max-Age=0" in r.headers["set-cookie"]
    r = client.get("/oauth2callback?code=x&state=y", follow_redirects=False)  # the cookie is gone: the first page
    assert r.headers["location"] == "/" and "set-cookie" not in r.headers


@pytest.mark.parametrize("referer", [None, "http://evil.example/keys", "http://testserver/nonsense",
                                     "http://testserver/", "http://testserver/chat"])
def test_a_sign_on_from_elsewhere_remembers_nothing(sso_client, referer):
    client = sso_client()
    r = client.get("/auth/login", headers={"Referer": referer} if referer else {}, follow_redirects=False)
    assert "byok_next" not in r.headers.get("set-cookie", "")


def test_a_planted_return_cookie_cannot_send_anyone_elsewhere(sso_client):
    client = sso_client()
    client.cookies.set("byok_next", "https://evil.example/")
    r = client.get("/oauth2callback", follow_redirects=False)
    assert r.headers["location"] == "/" and "Max-Age=0" in r.headers["set-cookie"]


def test_under_a_base_path_the_sign_on_returns_under_it(sso_client):
    client = sso_client("team")
    r = client.get("/team/auth/login", headers={"Referer": "http://testserver/team/usage?x=1"},
                   follow_redirects=False)
    assert "byok_next=usage;" in r.headers["set-cookie"] and "Path=/team;" in r.headers["set-cookie"]
    r = client.get("/team/oauth2callback", follow_redirects=False)
    assert r.headers["location"] == "/team/usage"


# --- roles from single sign-on groups ---------------------------------------------------------


def test_oidc_roles_read_from_the_environment():
    assert accounts.OidcRoles.from_env({}) is None
    assert accounts.OidcRoles.from_env({"BYOK_OIDC_ADMIN_GROUPS": " , "}) is None
    roles = accounts.OidcRoles.from_env({"BYOK_OIDC_ADMIN_GROUPS": "byok-admins, ops ,"})
    assert roles == accounts.OidcRoles(frozenset({"byok-admins", "ops"}), "groups")
    roles = accounts.OidcRoles.from_env({"BYOK_OIDC_ADMIN_GROUPS": "admin", "BYOK_OIDC_GROUPS_CLAIM": "roles"})
    assert roles is not None and roles.claim == "roles"


@pytest.mark.parametrize(("claims", "role"), [
    ({"groups": ["staff", "ops"]}, Role.ADMIN),
    ({"groups": "ops"}, Role.ADMIN),
    ({"groups": ["staff"]}, Role.MEMBER),
    ({"groups": ["OPS"]}, Role.MEMBER),  # names are compared exactly
    ({"groups": []}, Role.MEMBER),
    ({"groups": {"ops": True}}, Role.MEMBER),  # not a list of names
    ({}, Role.MEMBER),  # no claim at all: less access
    ({"realm_access": {"roles": ["ops"]}}, Role.MEMBER),  # only with the dotted claim name
])
def test_oidc_role_for_claims(claims, role):
    assert accounts.OidcRoles(frozenset({"ops"})).role_for(claims) is role


def test_dotted_claim_names_reach_into_objects():
    roles = accounts.OidcRoles(frozenset({"ops"}), "realm_access.roles")
    assert roles.role_for({"realm_access": {"roles": ["ops"]}}) is Role.ADMIN
    assert roles.role_for({"realm_access": ["ops"]}) is Role.MEMBER
    assert roles.role_for({"realm_access.roles": ["ops"]}) is Role.ADMIN  # a claim really named so comes first


def _role_events(rt) -> list[tuple[str, str | None, Role | None, str]]:
    return [(e.actor, e.username, e.role, e.detail) for e in audit.recent(rt) if e.action == "user.role"]


def test_sign_in_applies_the_groups_role_and_audits_changes_only(environ, rt):
    ann = make_user(rt, "ann@example.com")
    boss = make_user(rt, "boss@example.com", admin=True)
    assert accounts.apply_oidc_role(rt, ann, {"groups": ["ops"]}).role is Role.MEMBER  # not configured: untouched
    mapped = open_runtime({**environ, "BYOK_OIDC_ADMIN_GROUPS": "ops"}, migrate=False)
    try:
        assert accounts.apply_oidc_role(mapped, ann, {"groups": ["ops"]}).is_admin
        assert accounts.get_user(rt, "ann@example.com").is_admin
        accounts.apply_oidc_role(mapped, accounts.get_user(rt, "ann@example.com"), {"groups": ["ops", "x"]})
        accounts.apply_oidc_role(mapped, boss, {"email": "boss@example.com"})  # the IdP sent no groups
        assert not accounts.get_user(rt, "boss@example.com").is_admin
    finally:
        mapped.engine.dispose()
    assert _role_events(rt) == [
        ("oidc", "boss@example.com", Role.MEMBER, "because their single sign-on sent no 'groups' claim"),
        ("oidc", "ann@example.com", Role.ADMIN, "from their single sign-on groups"),
    ]


def test_a_stale_copy_of_the_user_changes_the_role_once(environ, rt):
    ann = make_user(rt, "ann@example.com")
    mapped = open_runtime({**environ, "BYOK_OIDC_ADMIN_GROUPS": "ops"}, migrate=False)
    try:
        first, second = accounts.get_user(rt, ann.username), accounts.get_user(rt, ann.username)
        accounts.apply_oidc_role(mapped, first, {"groups": ["ops"]})
        assert accounts.apply_oidc_role(mapped, second, {"groups": ["ops"]}).is_admin  # two reruns racing
    finally:
        mapped.engine.dispose()
    assert len(_role_events(rt)) == 1


OIDC_SECRETS = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32,
                "client_id": "id", "client_secret": "secret",
                "server_metadata_url": "https://idp.example/.well-known/openid-configuration"}


def test_single_sign_on_opens_the_admin_pages_to_the_admin_group(app, rt, environ, monkeypatch):
    use_environment(monkeypatch, {**environ, "BYOK_OIDC_ADMIN_GROUPS": "byok-admins"})
    make_user(rt, "ann@example.com")
    at = app_test()
    at.secrets["auth"] = OIDC_SECRETS
    at.user = {"is_logged_in": True, "email": "ann@example.com", "groups": ["staff", "byok-admins"]}
    at.run()
    assert not at.exception and any("(admin)" in c.value for c in at.sidebar.caption)
    open_page(at, "admin").run()
    assert not at.exception
    at = app_test()
    at.secrets["auth"] = OIDC_SECRETS
    at.user = {"is_logged_in": True, "email": "ann@example.com", "groups": ["staff"]}
    at.run()
    assert any("(member)" in c.value for c in at.sidebar.caption)
    with pytest.raises(ValueError):
        open_page(at, "admin")


def test_readyz_when_the_master_key_opens_none_of_the_stored_keys(client, rt, monkeypatch):
    keys.store(rt, Actor.operator(), Owner.team(), Provider.BRAVE, "brave-fake.readyz-0123456789abcdef")
    other = gen_key()
    monkeypatch.setenv("ENCRYPTION_KEY", other)
    clear_runtime()
    assert _refused(client.get("/readyz"), other) == "master key opens none of the stored keys"


def test_readyz_never_makes_a_new_key_file_over_stored_keys(client, rt, environ, monkeypatch):
    keys.store(rt, Actor.operator(), Owner.team(), Provider.BRAVE, "brave-fake.readyz-0123456789abcdef")
    monkeypatch.delenv("ENCRYPTION_KEY")  # the embedded default: data/master.key, which is not there
    clear_runtime()
    assert _refused(client.get("/readyz")) == "master key does not load"
    assert not (Path(environ["BYOK_DATA_DIR"]) / "master.key").exists()
