"""Training datasets under a privacy budget, and the ledger that guards the budget.

The ledger composes every run on a dataset under Rényi DP (see inference.ml.private): a run holds
its whole plan against the budget while it may still spend it ("reserved"), and what it actually
spent once it ends ("settled"). Reservations are taken under a lock on the dataset's row, so two
submissions at once cannot both fit in what only one fits in. A cancelled or failed run settles at
the steps it took; a run that a new worker resumes from its checkpoint spends its plan once.
"""

from __future__ import annotations

import json
import random
import uuid
from typing import Any, BinaryIO

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from audit.log.services import AuditActor, audit_record
from inference.exceptions import (
    BudgetExceeded,
    InvalidDataset,
    NotTrainable,
)
from inference.ml import dp_accounting
from inference.models import (
    CanaryAudit,
    FineTuneJob,
    LedgerState,
    PrivacyLedgerEntry,
    RegisteredModel,
    Task,
    TrainingDataset,
)
from inference.services.jobs import upload_text
from portal.accounts.actor import Actor
from portal.accounts.roles import Cap
from portal.jobs import stored_input
from portal.platform import csvsafe
from portal.platform.locks import for_update

WORKER = AuditActor.system("training worker")
EPSILON_RANGE = (0.01, 50.0)  # beyond 50, "private" says nothing a reader could rely on
DELTA_MAX = 1e-3
MIN_ROWS = 20
HOLDOUT = 0.1
LIMITS = {"epochs": (1, 50), "batch_size": (1, 4096), "learning_rate": (1e-7, 1.0), "max_grad_norm": (1e-3, 100.0)}
DEFAULTS = {"epochs": 3, "batch_size": 32, "learning_rate": 5e-4, "max_grad_norm": 1.0, "lr_schedule": "constant"}


def _budget_check(epsilon: float, delta: float, rows: int) -> None:
    if not EPSILON_RANGE[0] <= epsilon <= EPSILON_RANGE[1]:
        raise InvalidDataset(gettext('The epsilon cap must be between %(value)s and %(value2)s; got %(epsilon)s.') % {"value": EPSILON_RANGE[0], "value2": EPSILON_RANGE[1], "epsilon": epsilon})
    if not 0 < delta <= DELTA_MAX:
        raise InvalidDataset(gettext('The delta cap must be above 0 and at most %(DELTA_MAX)s; got %(delta)s.') % {"DELTA_MAX": DELTA_MAX, "delta": delta})
    if rows and delta >= 1 / rows:
        raise InvalidDataset(gettext('The delta cap must be below 1/rows = %(value)s (here %(rows)s rows): a larger delta allows a record to be disclosed outright.') % {"value": f"{1 / rows:.2g}", "rows": rows})


def _read_rows(upload: BinaryIO, labels: list[str]) -> tuple[list[tuple[str, int]], str]:
    """(text, label index) rows of a `text,label` CSV, and the file's SHA-256."""
    text, digest = upload_text(upload, max_bytes=settings.FINETUNE_MAX_BYTES, error=InvalidDataset)
    try:
        fieldnames, records = csvsafe.read_dicts(text)
    except csvsafe.Unreadable as exc:
        raise InvalidDataset(str(exc)) from None
    missing = {"text", "label"} - set(fieldnames)
    if missing:
        raise InvalidDataset(gettext('The CSV file needs the columns text and label; it lacks %(join)s.') % {"join": ', '.join(sorted(missing))})
    rows = []
    for line, record in enumerate(records, start=2):
        value, label = (record.get("text") or "").strip(), (record.get("label") or "").strip()
        if not value:
            raise InvalidDataset(gettext('Line %(line)s: the text is empty.') % {"line": line})
        if label in labels:
            rows.append((value, labels.index(label)))
        elif label.isdigit() and int(label) < len(labels):
            rows.append((value, int(label)))
        else:
            raise InvalidDataset(gettext("Line %(line)s: the label is not one of the model's labels (%(join)s) nor their index.") % {"line": line, "join": ', '.join(labels)})
    if len(rows) < MIN_ROWS:
        raise InvalidDataset(gettext('A training set needs at least %(MIN_ROWS)s rows; this one has %(len)s.') % {"MIN_ROWS": MIN_ROWS, "len": len(rows)})
    if len(rows) > settings.FINETUNE_MAX_ROWS:
        raise InvalidDataset(gettext('A training set holds at most %(FINETUNE_MAX_ROWS)s rows; this one has %(len)s.') % {"FINETUNE_MAX_ROWS": settings.FINETUNE_MAX_ROWS, "len": len(rows)})
    return rows, digest


def _read_texts(upload: BinaryIO, name: str) -> tuple[list[str], str]:
    """The records of a generative model's training file, and its SHA-256: JSON lines (a "text", or a
    chat's "messages" as [{"role", "content"}], rendered as "role: content" lines), a CSV with a `text`
    column, or plain text with one record a line."""
    text, digest = upload_text(upload, max_bytes=settings.FINETUNE_MAX_BYTES, error=InvalidDataset)
    records: list[str] = []
    lowered = name.lower()
    if lowered.endswith((".jsonl", ".ndjson")):
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidDataset(gettext('Line %(number)s is not JSON: %(msg)s.') % {"number": number, "msg": exc.msg}) from None
            if isinstance(item, dict) and isinstance(item.get("text"), str) and item["text"].strip():
                records.append(item["text"].strip())
            elif isinstance(item, dict) and isinstance(item.get("messages"), list) and item["messages"] and all(
                    isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                    for m in item["messages"]):
                records.append("\n".join(f"{m['role']}: {m['content'].strip()}" for m in item["messages"]))
            else:
                raise InvalidDataset(gettext('Line %(number)s needs a non-empty "text", or "messages" as a list of {"role", "content"} objects.') % {"number": number})
    elif lowered.endswith(".csv"):
        try:
            fieldnames, rows = csvsafe.read_dicts(text)
        except csvsafe.Unreadable as exc:
            raise InvalidDataset(str(exc)) from None
        if "text" not in fieldnames:
            raise InvalidDataset(gettext('The CSV file needs a text column.'))
        records = [(r.get("text") or "").strip() for r in rows if (r.get("text") or "").strip()]
    else:
        records = [line.strip() for line in text.splitlines() if line.strip()]
    if len(records) < MIN_ROWS:
        raise InvalidDataset(gettext('A training set needs at least %(MIN_ROWS)s records; this one has %(len)s.') % {"MIN_ROWS": MIN_ROWS, "len": len(records)})
    if len(records) > settings.FINETUNE_MAX_ROWS:
        raise InvalidDataset(gettext('A training set holds at most %(FINETUNE_MAX_ROWS)s records; this one has %(len)s.') % {"FINETUNE_MAX_ROWS": settings.FINETUNE_MAX_ROWS, "len": len(records)})
    return records, digest


def dataset_create(*, actor: Actor, model: RegisteredModel, upload: BinaryIO, name: str, epsilon_cap: float,
                   delta_cap: float) -> TrainingDataset:
    """Checks the rows against the model's labels (a classifier) or reads the records (a generative
    model) and checks the budget, stores them; nothing is kept on a refusal."""
    actor.require(Cap.MODEL_REGISTER, "upload training data")
    latest = model.versions.order_by("-version").first()
    if latest is None or latest.task not in (Task.TEXT, Task.GENERATION):
        raise NotTrainable(gettext('%(name)s is neither a text classifier nor a generative model; private fine-tuning trains Hugging Face sequence classifiers and causal language models (LoRA adapters).') % {"name": model.name})
    rows: list[Any]
    if latest.task == Task.GENERATION:
        rows, digest = _read_texts(upload, name or "")
    else:
        rows, digest = _read_rows(upload, list(latest.labels))
    holdout = max(1, round(len(rows) * HOLDOUT))
    _budget_check(epsilon_cap, delta_cap, len(rows) - holdout)
    order = list(range(len(rows)))
    random.Random(0).shuffle(order)  # noqa: S311  (a fixed split, not a secret)
    held = set(order[:holdout])
    content = {
        "kind": "texts" if latest.task == Task.GENERATION else "labelled",
        "labels": list(latest.labels),
        "train": [rows[i] for i in range(len(rows)) if i not in held],
        "holdout": [rows[i] for i in sorted(held)],
    }
    with stored_input(f"training/{actor.organization.pk}/{uuid.uuid4().hex}.json", json.dumps(content).encode()) as stored, transaction.atomic():
        dataset = TrainingDataset.objects.create(
            organization=actor.organization, model=model, name=(name or "training.csv")[:200], path=stored,
            sha256=digest, train_rows=len(content["train"]), holdout_rows=holdout, epsilon_cap=epsilon_cap,
            delta_cap=delta_cap, created_by=actor.user,
        )
        audit_record(  # the rows themselves are never logged
            action="training_dataset.created", actor=actor.audit_actor, organization_id=actor.organization.pk,
            target_type="inference.TrainingDataset", target_id=dataset.pk,
            payload={"model": model.name, "name": dataset.name, "sha256": digest, "rows": len(rows),
                     "holdout_rows": holdout, "epsilon_cap": epsilon_cap, "delta_cap": delta_cap},
        )
    return dataset


def ledger_runs(dataset: TrainingDataset, *, exclude_job: int | None = None) -> list[tuple[float, float, int]]:
    entries = dataset.ledger.exclude(job_id=exclude_job) if exclude_job else dataset.ledger.all()
    return [(e.noise_multiplier, e.sample_rate, e.steps_counted) for e in entries]


def budget_summary(dataset: TrainingDataset) -> dict[str, Any]:
    """Spent (settled runs), committed (settled and reserved), and the cap, all at the dataset's delta."""
    entries = list(dataset.ledger.all())
    settled = [(e.noise_multiplier, e.sample_rate, e.steps_spent) for e in entries if e.state == LedgerState.SETTLED]
    committed = [(e.noise_multiplier, e.sample_rate, e.steps_counted) for e in entries]
    return {
        "epsilon_cap": dataset.epsilon_cap, "delta": dataset.delta_cap, "accountant": "RDP (Opacus), composed over runs",
        "epsilon_spent": dp_accounting.composed_epsilon(settled, dataset.delta_cap),
        "epsilon_committed": dp_accounting.composed_epsilon(committed, dataset.delta_cap),
        "runs": len(entries), "reserved_runs": sum(e.state == LedgerState.RESERVED for e in entries),
    }


def _largest_fitting(runs: list[tuple[float, float, int]], dataset: TrainingDataset, plan: dp_accounting.Plan) -> float:
    """The largest epsilon one more run with this sampling and length could still have (0 if none).

    The least noise that keeps the composed total within the cap, by bisection on the noise multiplier,
    stated as that run's own epsilon.
    """
    held = dp_accounting.rdp_curve(runs)  # computed once; each trial adds one run's curve

    def total(sigma: float) -> float:
        return dp_accounting.epsilon_of(held + dp_accounting.rdp_curve([(sigma, plan.sample_rate, plan.steps)]), dataset.delta_cap)

    low, high = 0.3, 64.0
    if total(high) > dataset.epsilon_cap:
        return 0.0
    for _ in range(14):
        middle = (low * high) ** 0.5  # bisection on a log scale
        low, high = (low, middle) if total(middle) <= dataset.epsilon_cap else (middle, high)
    return dp_accounting.composed_epsilon([(high, plan.sample_rate, plan.steps)], dataset.delta_cap)


def _run_of(job: FineTuneJob | CanaryAudit) -> dict[str, Any]:
    """The ledger entry's owner: a fine-tuning job, or a canary audit's private run."""
    return {"audit": job} if isinstance(job, CanaryAudit) else {"job": job}


def privacy_reserve(*, dataset: TrainingDataset, job: FineTuneJob | CanaryAudit,
                    plan: dp_accounting.Plan) -> PrivacyLedgerEntry:
    """Reserves a plan against the dataset's cap (call inside a transaction); BudgetExceeded if it does not fit."""
    locked = for_update(TrainingDataset.objects.all()).get(pk=dataset.pk)  # one reservation at a time
    runs = ledger_runs(locked)
    total = dp_accounting.composed_epsilon([*runs, (plan.noise_multiplier, plan.sample_rate, plan.steps)], locked.delta_cap)
    if total > locked.epsilon_cap + 1e-9:
        before = dp_accounting.composed_epsilon(runs, locked.delta_cap)
        fits = _largest_fitting(runs, locked, plan)
        raise BudgetExceeded(
            f"This run would exceed the privacy budget of {locked.name}: its cap is epsilon {locked.epsilon_cap:g} "
            f"at delta {locked.delta_cap:g}; {len(runs)} earlier or running run(s) hold epsilon {before:.3f}, and this "
            f"one (epsilon {plan.target_epsilon:g} alone) would bring the total to {total:.3f} under RDP composition. "
            + (f"With these settings, a target of at most epsilon {fits:.2f} still fits." if fits >= EPSILON_RANGE[0]
               else "No further run fits in what is left."),
            details={"epsilon_cap": locked.epsilon_cap, "epsilon_committed": before, "epsilon_after": total,
                     "largest_fitting_target": round(fits, 4)},
        )
    return PrivacyLedgerEntry.objects.create(
        dataset=locked, **_run_of(job), noise_multiplier=plan.noise_multiplier, sample_rate=plan.sample_rate,
        steps_reserved=plan.steps, epsilon_planned=plan.target_epsilon,
    )


def privacy_settle(*, job: FineTuneJob | CanaryAudit, steps_spent: int) -> None:
    """Ends a reservation at what the run spent (inside a transaction); the rest of its plan is released."""
    entry = for_update(PrivacyLedgerEntry.objects.all()).get(**_run_of(job))
    if entry.state == LedgerState.SETTLED:
        return
    entry.state, entry.steps_spent = LedgerState.SETTLED, min(steps_spent, entry.steps_reserved)
    entry.settled_at = timezone.now()
    entry.save(update_fields=["state", "steps_spent", "settled_at"])
    dataset = entry.dataset
    audit_record(
        action="privacy.settled", actor=WORKER, organization_id=dataset.organization_id,
        target_type="inference.TrainingDataset", target_id=dataset.pk,
        payload={("audit" if isinstance(job, CanaryAudit) else "job"): job.pk, "steps_spent": entry.steps_spent, "steps_reserved": entry.steps_reserved,
                 "epsilon_run": dp_accounting.composed_epsilon([(entry.noise_multiplier, entry.sample_rate,
                                                           entry.steps_spent)], dataset.delta_cap),
                 "epsilon_spent_total": budget_summary(dataset)["epsilon_spent"]},
    )
