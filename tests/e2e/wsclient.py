"""Streamlit's websocket protocol as a browser tab speaks it, for the websocket tests and bench/load.py.

A tab connects to ``/_stcore/stream`` with the app's cookies and an ``Origin`` (``connect_args``),
sends one ``BackMsg.rerun_script`` per action (page, query string, widget states) and reads
``ForwardMsg``s until ``script_finished``. ``Tab`` keeps what a browser's page knows between runs
(the menu's pages, the page shown and its query string, the chat input's id, the timers of the
fragments that ask to be run on one) and, given the browser's binding secret, answers the app's sign-in probe
as the page does from its localStorage.
``Tab`` does no I/O: ``first_page`` drives it with websockets' sync client, the bench with the
asyncio one."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from google.protobuf import text_format
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.Delta_pb2 import Delta
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState
from websockets.sync.client import connect

TIMEOUT = 30.0
PROBE = "byok_binding_probe"  # byok_ui/state.py's component asking the page for the browser's secret


def connect_args(url: str, cookie: str, origin: str | None = None,
                 timeout: float = TIMEOUT) -> tuple[str, dict[str, Any]]:
    """The websocket address and options (sync or asyncio ``connect``) of a tab of the app at ``url``
    (its base path included) with the ``Cookie`` header ``cookie``, opened from ``origin`` (default:
    the app's own)."""
    own = urlsplit(url)
    return url.replace("http", "ws", 1) + "/_stcore/stream", {
        "origin": origin or f"{own.scheme}://{own.netloc}", "subprotocols": ["streamlit"],
        "additional_headers": {"Cookie": cookie}, "max_size": None, "open_timeout": timeout,
        "ping_interval": None, "proxy": None}


@dataclass
class Timer:
    """A fragment's timer as the browser keeps it (``st.fragment(run_every=...)``): started by the
    ``auto_rerun`` message that asks for it (one asking again for the same interval keeps it), it
    fires every ``interval`` seconds whether or not a script run is going; Streamlit queues a
    fragment's run asked for meanwhile and starts it when that run ends."""

    interval: float
    due: float  # ``time.perf_counter()`` time of its next firing

    def fire(self, now: float) -> None:
        while self.due <= now:  # a late firing is one firing, as the browser's setInterval
            self.due += self.interval


@dataclass
class Run:
    """One action as the tab saw it, from the frame sent to the script run that finished
    (``time.perf_counter()`` times); ``watch``: byte strings whose first arrival goes into ``marks``.
    ``fragment``: the action is a fragment's run (its end is the fragment run's), else it ends with
    a whole page's run."""

    sent: float
    watch: Iterable[bytes] = ()
    fragment: bool = False
    finished: float | None = None
    marks: dict[bytes, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # error and warning messages the page showed, exceptions
    deltas: list[Delta] = field(default_factory=list)  # what the last complete script run drew

    @property
    def seconds(self) -> float:
        assert self.finished is not None
        return self.finished - self.sent

    def text(self) -> str:
        return "\n".join(text_format.MessageToString(d, as_utf8=True) for d in self.deltas)


class Tab:
    """One browser tab's side of the protocol (``binding``: the secret its page keeps, None for a
    client without one, which leaves the probe unanswered)."""

    def __init__(self, binding: str | None = None):
        self.binding = binding
        self.pages: dict[str, str] = {}  # page name → page script hash, from the navigation message
        self.page = ""  # the page shown's script hash
        self.query = ""  # its query string as the app last set it (the Chat page: ?c=<conversation>)
        self.chat_input: str | None = None  # the chat input's widget id, from the Chat page's deltas
        self.auto_reruns: dict[str, Timer] = {}  # fragment id → the timer on which the browser asks for its runs
        self._probe: str | None = None  # the sign-in probe the script run being read drew, not answered yet
        self._answered: set[str] = set()  # probes answered: the page answers once per probe it shows

    def rerun(self, page_hash: str, widgets: Iterable[WidgetState] = ()) -> bytes:
        """The frame asking for a script run of ``page_hash`` ("": the default page) with these widget states."""
        msg = BackMsg()
        state = msg.rerun_script
        state.query_string = self.query
        state.page_script_hash = page_hash
        state.context_info.timezone = "UTC"
        state.context_info.locale = "en-US"
        state.widget_states.widgets.extend(widgets)
        return msg.SerializeToString()

    def fragment_rerun(self, fragment_id: str) -> bytes:
        """The frame a browser sends on a fragment's timer (``st.fragment(run_every=...)``)."""
        msg = BackMsg()
        msg.ParseFromString(self.rerun(self.page))
        msg.rerun_script.fragment_id = fragment_id
        msg.rerun_script.is_auto_rerun = True
        return msg.SerializeToString()

    def read(self, run: Run, data: bytes) -> bytes | None:
        """Take in one frame the server sent; set ``run.finished`` when its script run is over, or
        return the frame to send first (the probe's answer, which runs the script again)."""
        now = time.perf_counter()
        for marker in run.watch:
            if marker not in run.marks and marker in data:
                run.marks[marker] = now
        msg = ForwardMsg()
        msg.ParseFromString(data)
        kind = msg.WhichOneof("type")
        if kind == "page_info_changed":
            self.query = msg.page_info_changed.query_string
        elif kind == "navigation":
            self.pages = {p.page_name: p.page_script_hash for p in msg.navigation.app_pages
                          if not p.is_hidden}  # the menu's pages, not stand-ins at other URLs
            self.page = msg.navigation.page_script_hash
        elif kind == "delta":
            run.deltas.append(msg.delta)
            if msg.delta.WhichOneof("type") == "new_element":
                self._note(run, msg.delta.new_element)
        elif kind == "new_session":
            run.finished = None  # a script run starts (the action's, or one queued before it)
            if not msg.metadata.run.fragment_ids:
                self.auto_reruns.clear()  # a full run: it asks again for the timers of the fragments it draws
        elif kind == "auto_rerun":
            timer = self.auto_reruns.get(msg.auto_rerun.fragment_id)
            if timer is None or timer.interval != msg.auto_rerun.interval:
                self.auto_reruns[msg.auto_rerun.fragment_id] = Timer(msg.auto_rerun.interval,
                                                                     now + msg.auto_rerun.interval)
        elif kind == "stop_auto_rerun":
            for fragment_id in msg.stop_auto_rerun.fragment_ids:
                self.auto_reruns.pop(fragment_id, None)
        elif kind == "page_not_found":
            raise AssertionError(f"page not found: {msg.page_not_found.page_name!r}")
        elif kind == "script_finished":
            if msg.script_finished == ForwardMsg.FINISHED_WITH_COMPILE_ERROR:
                raise AssertionError("the script did not compile")
            if msg.script_finished == ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY:
                if run.fragment:  # a fragment's run: it drew only the fragment
                    run.finished = now
            elif msg.script_finished != ForwardMsg.FINISHED_SUCCESSFULLY:
                run.deltas.clear()  # FINISHED_EARLY_FOR_RERUN: the next run draws the page again
            elif self._probe is not None and self.binding is not None:
                answer = WidgetState(id=self._probe, json_value=json.dumps({"binding": self.binding}))
                self._answered.add(self._probe)
                self._probe = None
                run.deltas.clear()
                return self.rerun(self.page, [answer])
            else:
                self._probe = None
                run.finished = now
        return None

    def _note(self, run: Run, element: Any) -> None:
        shown = element.WhichOneof("type")
        if shown == "chat_input":
            self.chat_input = element.chat_input.id
        elif (shown == "bidi_component" and element.bidi_component.component_name.endswith(PROBE)
              and element.bidi_component.id not in self._answered):
            self._probe = element.bidi_component.id
        elif shown == "exception":
            run.problems.append(f"exception: {element.exception.message}")
        elif shown == "alert" and element.alert.format in (element.alert.ERROR, element.alert.WARNING):
            run.problems.append(f"{element.alert.title} {element.alert.body}".strip())


def exchange(ws: Any, tab: Tab, frame: bytes) -> Run:
    """Send ``frame`` on the tab's open websocket and read until its script run is over (answering
    the sign-in probe as the page does); the run holds what it drew."""
    run = Run(time.perf_counter(), fragment=BackMsg.FromString(frame).rerun_script.fragment_id != "")
    ws.send(frame)
    deadline = time.monotonic() + TIMEOUT
    while run.finished is None:
        answer = tab.read(run, ws.recv(timeout=max(0.0, deadline - time.monotonic())))
        if answer is not None:
            ws.send(answer)
    return run


def live_reply(url: str, cookie: str, binding: str, prompt: str, hold: threading.Event) -> tuple[Run, Run, list[Run]]:
    """Send ``prompt`` from the Chat page of a tab signed in with ``cookie`` and ``binding``, and
    run the live reply's fragment as its timer would, until the timer stops: (the send's run, a
    fragment run while the provider holds the reply, the fragment's runs after ``hold`` is set,
    the whole page's run at the end included). ``hold``: the fake provider's gate, cleared here."""
    address, options = connect_args(url, cookie)
    tab = Tab(binding)
    with connect(address, **options) as ws:
        exchange(ws, tab, tab.rerun(""))  # the Chat page, signed in
        assert tab.chat_input is not None
        hold.clear()  # the reply's first word, then the provider holds the rest
        message = WidgetState(id=tab.chat_input)
        message.chat_input_value.data = prompt
        sent = exchange(ws, tab, tab.rerun(tab.pages["Chat"], [message]))
        assert sent.problems == [] and tab.auto_reruns, sent.text()
        fragment = next(iter(tab.auto_reruns))
        streaming = exchange(ws, tab, tab.fragment_rerun(fragment))
        hold.set()
        runs = []
        while tab.auto_reruns and len(runs) < 50:
            runs.append(exchange(ws, tab, tab.fragment_rerun(fragment)))
    return sent, streaming, runs


def first_page(url: str, cookie: str, origin: str | None = None, binding: str | None = None) -> Run:
    """Open a tab of the app at ``url`` as a browser does on load (see ``connect_args``), run its
    default page, close it; the run holds what that page drew."""
    address, options = connect_args(url, cookie, origin)
    tab = Tab(binding)
    with connect(address, **options) as ws:
        return exchange(ws, tab, tab.rerun(""))
