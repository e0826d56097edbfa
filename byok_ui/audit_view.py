"""The Admin page's audit log: filters (who, what, when), the newest events, and a CSV export of
everything the filters select (byok_core.audit reads, filters and writes it)."""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import date

import pandas as pd
import streamlit as st

from byok_core import audit, words
from byok_core.audit import AuditAction
from byok_core.runtime import Runtime
from byok_ui import state

SHOWN = 300  # the newest events of the filter on screen; the CSV has them all


def _what(action: str) -> str:
    said = words.audit_action(action)
    return said[:1].upper() + said[1:]


def render(rt: Runtime, usernames: Mapping[int, str]) -> None:
    """The audit log with its filters; ``usernames`` maps user ids to names (events name owners by id)."""
    with st.container(horizontal=True, vertical_alignment="bottom"):  # the export beside the filters it follows
        who = st.multiselect("Who", audit.actors(rt), format_func=words.actor_name, key="audit_who",
                             placeholder="Anyone", width=240)
        what = st.multiselect("What", [a.value for a in AuditAction], format_func=_what, key="audit_what",
                              placeholder="Anything", width=300)
        when = st.date_input("When (UTC days)", value=[], key="audit_when", width=240, format="YYYY-MM-DD",
                             help="One day, or a first and a last day; empty: any day.")
        days: tuple[date | None, ...] = ((*tuple(when or ()), None, None)[:2] if isinstance(when, tuple)
                                         else (when, when))
        since, until = days[0], days[1] or days[0]
        flt = audit.AuditFilter(actors=who, actions=what, since=since, until=until)
        total = audit.count(rt, flt)

        def _csv() -> str:
            out = io.StringIO()
            audit.write_csv(rt, flt, out, lambda e: words.audit_sentence(e, usernames))
            return out.getvalue()

        st.download_button("Download CSV", _csv, file_name=f"audit-{since or 'all'}-{until or 'now'}.csv",
                           mime="text/csv", icon=":material/download:", on_click="ignore", key="audit_csv",
                           disabled=not total, help="Every event these filters select, oldest first.")
    events = audit.recent(rt, limit=SHOWN, flt=flt)
    shown = f"the newest {SHOWN:,} of {total:,}" if total > SHOWN else f"{total:,}"
    st.caption(f"{shown[:1].upper()}{shown[1:]} event{'s' * (total != 1)}, newest first; times in UTC.")
    if not events:
        st.info("No events with these filters.", icon=":material/info:")
        return
    st.dataframe(
        pd.DataFrame({
            "Time": [state.fmt_time(e.ts) for e in events],
            "What happened": [words.audit_sentence(e, usernames) for e in events],
        }),
        hide_index=True, key="admin_audit", alt="Audit log, newest first", width="stretch",
    )
