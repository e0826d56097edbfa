"""The bench's people: members signed in the way the browser signs in, and their tabs, which speak
Streamlit's websocket protocol with the tests' client (tests/e2e/wsclient.py) over asyncio."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx
from streamlit.proto.WidgetStates_pb2 import WidgetState
from websockets.asyncio.client import connect
from wsclient import Run, Tab, connect_args

from byok_core import accounts, keys
from byok_core.identity import Actor, Owner, Role
from byok_core.providers import Provider
from byok_core.startup import open_runtime
from loadlib.provider import KEY, reply_words
from loadlib.servers import Servers

PASSWORD = "load-bench-password-1"
SIGNED_IN = b"Signed in as"
TIMEOUT = 120.0


@dataclass(frozen=True)
class Person:
    cookie: str  # the Cookie header: the session cookie, and nginx's routing cookie
    binding: str  # the secret the browser's page keeps in localStorage; the session is bound to it


def sign_in_people(servers: Servers, count: int) -> list[Person]:
    """``count`` members and a stored team key; each person's browser POSTs a one-time ticket and
    its binding secret to /byok/session for the session cookie, as the sign-in page does."""
    rt = open_runtime(servers.apps[0].env, migrate=False)  # the server migrated it at start
    people = []
    try:
        keys.store(rt, Actor.operator(), Owner.team(), Provider.OPENAI, KEY)
        for i in range(count):
            user = accounts.create_user(rt, Actor.operator(), f"load{i:03d}", PASSWORD, Role.MEMBER)
            binding = secrets.token_urlsafe(32)
            response = httpx.post(servers.url + "/byok/session", headers={"Origin": servers.url},
                                  json={"ticket": accounts.issue_login_ticket(rt, user), "binding": binding})
            response.raise_for_status()
            # a browser also holds nginx's routing cookie (replicas); one value per person, as nginx would pick
            people.append(Person(f"byok_session={response.cookies['byok_session']}; byok_route=load{i:03d}",
                                 binding))
    finally:
        rt.engine.dispose()
    return people


class BrowserTab:
    """One of a person's browser tabs: the app's websocket, with the person's cookie."""

    def __init__(self, url: str, person: Person):
        self.url, self.person = url, person
        self.tab = Tab(person.binding)
        self.ws: Any = None
        self.upstream = ""  # the replica behind nginx that serves this tab (its X-Upstream header)

    def showing(self) -> str:
        """The name of the page the tab shows (Chat until the menu is known)."""
        return next((name for name, h in self.tab.pages.items() if h == self.tab.page), "Chat")

    async def open(self) -> Run:
        """Connect and run the default page (Chat), as a browser does on load: the first run asks
        the page for its binding secret, the tab's answer runs the page signed in."""
        sent = time.perf_counter()
        address, options = connect_args(self.url, self.person.cookie, timeout=TIMEOUT)
        self.ws = await connect(address, **options)
        self.upstream = self.ws.response.headers.get("X-Upstream", "")
        run = await self._rerun(self.tab.rerun(""), (SIGNED_IN,), sent=sent)
        if SIGNED_IN not in run.marks:
            raise SystemExit("the first page is not signed in: the session cookie did not work")
        return run

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
            self.ws = None

    async def switch(self, name: str) -> Run:
        """Open a page from the menu (its URL has no query string)."""
        self.tab.query = ""
        return await self._rerun(self.tab.rerun(self.tab.pages[name]), ())

    async def chat(self, tag: str, chunks: int) -> Run:
        """Send a message from the Chat page's input; the run's marks hold the reply's first and last words."""
        if self.tab.page != self.tab.pages["Chat"] or self.tab.chat_input is None:
            await self.switch("Chat")
        assert self.tab.chat_input is not None, "no chat input on the Chat page"
        state = WidgetState(id=self.tab.chat_input)
        state.chat_input_value.data = f"Load test message {tag}"
        run = Run(time.perf_counter(), reply_words(tag, chunks))
        await self.ws.send(self.tab.rerun(self.tab.pages["Chat"], [state]))
        return await self._follow(run, reply_words(tag, chunks)[1])

    async def _follow(self, run: Run, last: bytes) -> Run:
        """Read on as the browser does until ``last`` shows and the page's run after the reply has
        finished: the live reply's fragment asks for its runs on a timer (wsclient.Timer) that
        fires while a run is going or not."""
        deadline = time.monotonic() + TIMEOUT
        while run.finished is None or self.tab.auto_reruns:
            fragment, timer = min(self.tab.auto_reruns.items(), key=lambda item: item[1].due, default=("", None))
            if timer is not None and timer.due <= time.perf_counter():
                timer.fire(time.perf_counter())
                await self.ws.send(self.tab.fragment_rerun(fragment))
                continue
            wait = deadline - time.monotonic()
            if timer is not None:
                wait = min(wait, timer.due - time.perf_counter())
            try:
                data = await asyncio.wait_for(self.ws.recv(), max(0.0, wait))
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise
                continue
            answer = self.tab.read(run, data)
            if answer is not None:
                await self.ws.send(answer)
        if last not in run.marks:
            run.problems.append("the reply stopped showing before its last word")
        return run

    async def _rerun(self, frame: bytes, watch: Iterable[bytes], sent: float | None = None) -> Run:
        run = Run(time.perf_counter() if sent is None else sent, list(watch))
        return await self._send_and_read(run, frame)

    async def _send_and_read(self, run: Run, frame: bytes) -> Run:
        await self.ws.send(frame)
        deadline = time.monotonic() + TIMEOUT
        while run.finished is None:
            answer = self.tab.read(run, await asyncio.wait_for(self.ws.recv(), max(0.1, deadline - time.monotonic())))
            if answer is not None:
                await self.ws.send(answer)
        return run
