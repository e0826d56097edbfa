"""``python tests/e2e/slow_tabs.py -m streamlit run …``: the app on a server that pauses after drawing
tabs, as a busy server pauses somewhere in every run: the browser then shows the run in parts, and
an element that changed place since the last run is made anew there (an open tab falls back to the first)."""

import runpy
import sys
import time

import streamlit as st

_tabs = st.tabs


def _slow_tabs(*args, **kwargs):
    drawn = _tabs(*args, **kwargs)
    time.sleep(1)
    return drawn


st.tabs = _slow_tabs
assert sys.argv[1:3] == ["-m", "streamlit"], sys.argv
sys.argv = ["streamlit", *sys.argv[3:]]
runpy.run_module("streamlit", run_name="__main__", alter_sys=True)
