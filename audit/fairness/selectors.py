from __future__ import annotations

from django.db.models import QuerySet
from django.utils.translation import gettext

from audit.fairness.exceptions import ReportNotFound
from audit.fairness.models import BiasReport
from inference.models import ModelVersion
from portal.accounts.actor import Actor
from portal.accounts.roles import Cap


def report_list(*, actor: Actor, version: ModelVersion | None = None) -> QuerySet[BiasReport]:
    actor.require(Cap.REPORT_READ, "read bias reports")
    found = BiasReport.objects.filter(organization=actor.organization).select_related("model_version__model", "created_by")
    if version is not None:
        found = found.filter(model_version=version)
    return found.order_by("-created_at")


def report_get(*, actor: Actor, pk: int) -> BiasReport:
    """A report of the actor's organisation; another organisation's is not found (404)."""
    found = report_list(actor=actor).filter(pk=pk).first()
    if found is None:
        raise ReportNotFound(gettext('No bias report %(pk)s in %(name)s.') % {"pk": pk, "name": actor.organization.name})
    return found


def report_latest_done(*, version: ModelVersion, kind: str | None = None) -> BiasReport | None:
    """The latest finished report of a version, of one kind if given (for exports, authorised on the
    version already)."""
    found = BiasReport.objects.filter(model_version=version, status="done")
    if kind is not None:
        found = found.filter(kind=kind)
    return found.select_related("model_version__model", "created_by").order_by("-number").first()


def report_ids(*, version: ModelVersion) -> list[int]:
    return list(BiasReport.objects.filter(model_version=version).values_list("pk", flat=True))
