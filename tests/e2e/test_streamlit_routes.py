"""Streamlit's own routes on the running server (`streamlit run streamlit_app.py`, the shared one): its
``/_stcore/metrics`` (cached functions' names, hit counts, session-state memory) answers only with
the ``/metrics`` token, and its agent API, which drives sessions over plain HTTP, stays off."""

from __future__ import annotations

import tomllib

import httpx
import pytest
from appserver import METRICS_TOKEN as TOKEN
from appserver import ROOT

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def url(server):
    """The shared app server (tests/e2e/conftest.py), whose /metrics token is ``TOKEN``."""
    assert server.env["BYOK_METRICS_TOKEN"] == TOKEN
    httpx.get(server.url + "/", timeout=10)  # a page's load: Streamlit has stats to tell
    return server.url


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}])
@pytest.mark.parametrize("path", ["/_stcore/metrics", "/_stcore/metrics/", "/_stcore/metrics?families=active_sessions"])
def test_streamlit_metrics_need_the_token(url, path, headers):
    r = httpx.get(url + path, headers=headers, timeout=10, follow_redirects=True)
    assert r.status_code == 401 and r.text == "Unauthorized" and r.headers["cache-control"] == "no-store"


def test_streamlit_metrics_answer_with_the_token(url):
    r = httpx.get(url + "/_stcore/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert r.status_code == 200 and "active_sessions" in r.text


def test_the_agent_api_is_pinned_off(url):
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["enableAgentApi"] is False  # not only Streamlit's default of today
    r = httpx.post(url + "/_stcore/agent/interact", json={}, timeout=10)
    assert r.status_code >= 400 and r.json()["error"]["code"] == "not_available", r.text
