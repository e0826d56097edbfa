"""Monthly USD budgets on shared keys, one per user and one for the whole team.

Only calls paid by the team's or the server's keys (key source "team" or "env") count, per
calendar month in UTC, so budgets reset on the 1st. Calls on a person's own key are never counted
nor refused. One module per concept:

* ``lines``: reading them: the budgets a user's calls count against, this month's spend and open
  reservations, why a call would be refused;
* ``ledger``: each shared-key call reserved before it is made and settled after (so budgets hold
  under concurrency), the alerts at 80% and 100%, and the running figures reconciled with the usage log;
* ``admin``: setting and clearing budgets, and this month's spend report.

Callers use the names below through the package: ``budgets.set_budget(...)``."""

from __future__ import annotations

from byok_core.budgets.admin import alerting, budget_of, clear_budget, set_budget, spend_report
from byok_core.budgets.ledger import (
    RESERVATION_TTL,
    Admission,
    Drift,
    admitted,
    announce,
    charge_abandoned,
    check,
    reconcile,
    settle,
)
from byok_core.budgets.lines import BudgetLine, BudgetStatus, month_of, status

__all__ = [  # what the callers use, whichever module of the package holds it
    "RESERVATION_TTL", "Admission", "BudgetLine", "BudgetStatus", "Drift", "admitted", "alerting", "announce",
    "budget_of", "charge_abandoned", "check", "clear_budget", "month_of", "reconcile", "set_budget", "settle",
    "spend_report", "status",
]
