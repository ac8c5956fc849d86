"""Usage over time: a chart of rows per day, and the period's totals per token and per model."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from inference import charts
from inference.usage_history import MAX_DAYS, usage_history
from portal.accounts.roles import Cap
from portal.web.access import capability_required


@capability_required(Cap.ORG_READ, gettext_lazy("see the organisation's usage"))
def usage_page(request: HttpRequest) -> HttpResponse:
    try:
        days = min(max(int(request.GET.get("days") or 30), 1), MAX_DAYS)
    except ValueError:
        days = 30
    history = usage_history(actor=request.actor, days=days)  # type: ignore[attr-defined]
    return render(request, "inference/usage.html", {
        "history": history, "days": days, "chart": charts.usage_columns(history["daily"]),
        "energy_chart": charts.usage_columns(history["daily"], key="energy_wh", unit="Wh",
                                             title=_("Energy of served work per day (Wh)"), digits=3),
        "token_chart": charts.total_bars([(t["name"] or _("token %(number)s") % {"number": t["token"]}, t["rows"]) for t in history["tokens"]],
                                         title=_("Rows per token over the period"), unit=_("rows")),
        "model_chart": charts.total_bars([(m["model"], m["rows"]) for m in history["models"]],
                                         title=_("Rows per model over the period"), unit=_("rows")),
    })
