"""A reviewer's inbox: the versions waiting for review, each beside the version in production.

Read-only: what changed against production (the card's fields, the measured metrics, the evidence's
verdicts), and whether Approve would be refused and why (evidence that blocks approval, or the
reviewer's own submission), so that the reviewer sees it before pressing the button.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from inference.evidence import Evidence, version_evidence
from inference.models import ModelAlias, ModelVersion, VersionStatus
from inference.services.registry import CARD_FIELDS
from portal.accounts.actor import Actor

METRICS_COMPARED = ("accuracy", "f1_macro", "roc_auc", "calibration_error")


@dataclass
class Review:
    version: ModelVersion
    production: ModelVersion | None
    card_changed: list[str]  # fields whose text differs from production's (all filled ones without production)
    metrics: list[dict[str, Any]]  # {"name", "production", "this"} for the evaluation's figures
    evidence: list[Evidence]
    refusals: list[str] = field(default_factory=list)  # why Approve would be refused; empty: it would not
    production_evidence: dict[str, Evidence] = field(default_factory=dict)  # by title, to compare verdicts

    @property
    def approvable(self) -> bool:
        return not self.refusals

    @property
    def card_changed_words(self) -> list[str]:
        return [f.replace("_", " ") for f in self.card_changed]

    @property
    def evidence_pairs(self) -> list[tuple[Evidence, Evidence | None]]:
        """This version's evidence, each beside production's of the same kind (bias report, export...)."""
        return [(e, self.production_evidence.get(e.title)) for e in self.evidence]


def _evaluation(version: ModelVersion | None) -> dict[str, Any]:
    return dict(((version.metrics or {}).get("evaluation") or {}) if version is not None else {})


def review_of(*, actor: Actor, version: ModelVersion) -> Review:
    alias = ModelAlias.objects.filter(model=version.model, name="production").select_related("version").first()
    production = alias.version if alias and alias.version_id != version.pk else None
    before = production.card if production else {}
    changed = [f for f in CARD_FIELDS if str(version.card.get(f, "")).strip() != str(before.get(f, "")).strip()]
    now, then = _evaluation(version), _evaluation(production)
    metrics = [{"name": name, "production": then.get(name), "this": now.get(name)}
               for name in METRICS_COMPARED if name in now or name in then]
    evidence = version_evidence(version)
    refusals = [e.reason for e in evidence if e.blocks_approval]
    if version.submitted_by_id == actor.user.pk:
        refusals.append("You submitted this version: another reviewer approves it.")
    before_evidence = {e.title: e for e in version_evidence(production)} if production else {}
    return Review(version=version, production=production, card_changed=changed, metrics=metrics,
                  evidence=evidence, refusals=refusals, production_evidence=before_evidence)


def review_queue(*, actor: Actor) -> list[Review]:
    """The organisation's submitted versions, oldest first, each with what a reviewer weighs."""
    waiting = (ModelVersion.objects.filter(model__organization=actor.organization, status=VersionStatus.SUBMITTED)
               .select_related("model", "submitted_by").order_by("created_at"))
    return [review_of(actor=actor, version=v) for v in waiting]
