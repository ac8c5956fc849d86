"""Usage over time, from the metering already stored: per day (the organisation's totals), per token
and per model over a period. Per model it counts finished predictions and the rows of batch jobs
(metering keeps no model); per token and per day it reads the metering itself."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db.models import Count, Sum

from inference.models import BatchJob, Completion, Prediction, UsageDaily
from inference.services.energy import grid_intensity
from inference.services.usage import today
from portal.accounts.actor import Actor
from portal.jobs import JobStatus

MAX_DAYS = 90


def usage_history(*, actor: Actor, days: int = 30) -> dict[str, Any]:
    until: date = today()
    since = until - timedelta(days=days - 1)
    start = datetime.combine(since, time.min, tzinfo=UTC)  # a bound the created_at indexes can use (UTC days)
    metered = UsageDaily.objects.filter(organization=actor.organization, day__gte=since, day__lte=until)
    totals = {row.day: row for row in metered.filter(token__isnull=True)}
    daily: list[dict[str, Any]] = []
    for offset in range(days):
        day = since + timedelta(days=offset)
        total = totals.get(day)
        daily.append({"day": day.isoformat(), "requests": total.requests if total else 0,
                      "rows": total.rows if total else 0, "compute_ms": round(total.compute_ms, 1) if total else 0.0,
                      "energy_wh": total.energy_wh if total else 0.0,
                      "energy_estimated_wh": total.energy_estimated_wh if total else 0.0,
                      "carbon_g": total.carbon_g if total else 0.0})
    tokens = [{"token": row["token"], "name": row["token__name"] or "", "requests": row["requests"] or 0,
               "rows": row["rows"] or 0, "energy_wh": row["energy"] or 0.0,
               "carbon_g": row["carbon"] or 0.0}
              for row in metered.filter(token__isnull=False).values("token", "token__name")
              .annotate(requests=Sum("requests"), rows=Sum("rows"), energy=Sum("energy_wh"), carbon=Sum("carbon_g"))
              .order_by("-rows")]
    models: dict[str, dict[str, Any]] = {}
    predictions = (Prediction.objects.filter(organization=actor.organization, status=JobStatus.DONE,
                                             created_at__gte=start)
                   .values("model_version__model__name").annotate(requests=Count("pk"), rows=Sum("rows"),
                                                                  energy=Sum("energy_wh")))
    for row in predictions:
        models[row["model_version__model__name"]] = {"model": row["model_version__model__name"],
                                                     "requests": row["requests"], "rows": row["rows"] or 0,
                                                     "energy_wh": row["energy"] or 0.0}
    completions = (Completion.objects.filter(organization=actor.organization, status=JobStatus.DONE,
                                             created_at__gte=start)
                   .values("model_version__model__name").annotate(requests=Count("pk"), energy=Sum("energy_wh")))
    for done in completions:
        name = done["model_version__model__name"]
        entry = models.setdefault(name, {"model": name, "requests": 0, "rows": 0, "energy_wh": 0.0})
        entry["requests"] += done["requests"]
        entry["energy_wh"] += done["energy"] or 0.0
    jobs = (BatchJob.objects.filter(organization=actor.organization, created_at__gte=start)
            .values("model_version__model__name").annotate(jobs=Count("pk"), rows=Sum("rows_done")))
    for job_row in jobs:
        name = job_row["model_version__model__name"]
        entry = models.setdefault(name, {"model": name, "requests": 0, "rows": 0, "energy_wh": 0.0})
        entry["rows"] += job_row["rows"] or 0
        entry["batch_jobs"] = job_row["jobs"]
    intensity, grid = grid_intensity()
    for entry in models.values():
        entry.setdefault("batch_jobs", 0)
        entry["carbon_g"] = entry["energy_wh"] / 1000 * intensity  # at the grid's intensity now
    energy = sum(d["energy_wh"] for d in daily)
    return {"since": since.isoformat(), "until": until.isoformat(), "daily": daily, "tokens": tokens,
            "models": sorted(models.values(), key=lambda m: -m["rows"]),
            "energy": {"energy_wh": energy, "estimated_wh": sum(d["energy_estimated_wh"] for d in daily),
                       "carbon_g": sum(d["carbon_g"] for d in daily), "grid_g_per_kwh": intensity,
                       "grid_source": grid}}
