"""Every REST endpoint of the product x every role x own / other organisation, in one table.

The accounts endpoints have their own, finer matrix (tests/portal/accounts/test_api_matrix.py);
this one covers the registry, serving, jobs and the audit log. For the roles a row allows, the
answer is anything but 401/403 (a 409 for a version in the wrong state still proves the right);
for the others, 403. Another organisation's objects are 404 for everyone, never the object.
"""

from __future__ import annotations

import re

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from rest_framework.test import APIClient

from audit.exports.models import ComplianceExport
from audit.fairness.models import BiasReport
from audit.log.models import LogEntry
from audit.log.services import checkpoint_create
from inference.models import (
    BatchJob,
    Explanation,
    FineTuneJob,
    GlobalExplanation,
    ModelUpload,
    Prediction,
    TrainingDataset,
)
from portal.accounts.roles import Role
from tests.inference.factories import Served
from tests.portal.accounts.factories import OrganizationFactory, member, token_for

ROLES = [r.value for r in Role]
EVERYONE = set(ROLES)
PREDICTORS = {"consumer", "owner", "reviewer", "admin"}
REGISTRARS = {"owner", "admin"}
REVIEWERS = {"reviewer", "admin"}
AUDITORS = {"auditor", "admin"}
ADMINS = {"admin"}
REPORT_READERS = {"owner", "reviewer", "auditor", "admin"}
REPORT_CREATORS = {"owner", "reviewer", "admin"}
ROW = {"income": 90, "region": "north"}

# (id, method, path, body, roles allowed); {p} a prediction, {j} a job, {e} an audit entry, {b} a bias report,
# {u} a model upload, {x} an explanation, {g} a global explanation, {d} a training dataset, {f} a fine-tuning job, {c} a compliance export
CASES = [
    ("models-list", "get", "/api/v1/models", None, EVERYONE),
    ("reviews", "get", "/api/v1/reviews", None, REVIEWERS),
    ("usage", "get", "/api/v1/usage", None, EVERYONE),
    ("models-register", "post", "/api/v1/models", {}, REGISTRARS),
    ("model-upload", "get", "/api/v1/model-uploads/{u}", None, REGISTRARS),
    ("model", "get", "/api/v1/models/credit", None, EVERYONE),
    ("version", "get", "/api/v1/models/credit/versions/1", None, EVERYONE),
    ("version-card-edit", "patch", "/api/v1/models/credit/versions/1", {"card": {"limitations": "x"}}, REGISTRARS),
    ("version-delete", "delete", "/api/v1/models/credit/versions/1", None, REGISTRARS),
    ("evaluations", "get", "/api/v1/models/credit/versions/1/evaluations", None, EVERYONE),
    ("evaluation-create", "post", "/api/v1/models/credit/versions/1/evaluations", {}, REGISTRARS),
    ("evaluation", "get", "/api/v1/evaluations/999999", None, EVERYONE),
    ("compressions", "get", "/api/v1/models/credit/versions/1/compressions", None, EVERYONE),
    ("compression-create", "post", "/api/v1/models/credit/versions/1/compressions", {}, REGISTRARS),
    ("compression", "get", "/api/v1/compressions/999999", None, EVERYONE),
    ("compression-policy", "get", "/api/v1/compression-policy", None, EVERYONE),
    ("compression-policy-set", "put", "/api/v1/compression-policy", {"max_accuracy_drop": 2}, ADMINS),
    ("version-submit", "post", "/api/v1/models/credit/versions/1/submit", {}, REGISTRARS),
    ("version-approve", "post", "/api/v1/models/credit/versions/1/approve", {}, REVIEWERS),
    ("version-reject", "post", "/api/v1/models/credit/versions/1/reject", {"comment": "x"}, REVIEWERS),
    ("version-retire", "post", "/api/v1/models/credit/versions/1/retire", {}, REVIEWERS),
    ("alias-move", "put", "/api/v1/models/credit/aliases/production", {"version": 1}, REGISTRARS),
    ("predict", "post", "/api/v1/models/credit/predict", {"inputs": [ROW]}, PREDICTORS),
    ("explain", "post", "/api/v1/predictions/{p}/explain", {"max_evals": 1}, PREDICTORS),
    ("explanation", "get", "/api/v1/explanations/{x}", None, EVERYONE),
    ("jobs-list", "get", "/api/v1/models/credit/jobs", None, EVERYONE),
    ("jobs-create", "post", "/api/v1/models/credit/jobs", {}, PREDICTORS),
    ("prediction", "get", "/api/v1/predictions/{p}", None, EVERYONE),
    ("completions", "get", "/api/v1/completions", None, EVERYONE),
    ("completion", "get", "/api/v1/completions/999999", None, EVERYONE),
    ("completion-explain", "post", "/api/v1/completions/999999/explain", {}, EVERYONE),
    ("completion-explanation", "get", "/api/v1/completion-explanations/999999", None, EVERYONE),
    ("guardrails", "get", "/api/v1/guardrails", None, EVERYONE),
    ("guardrails-set", "put", "/api/v1/guardrails", {"mask_pii": True}, ADMINS),
    ("guardrails-remove", "delete", "/api/v1/guardrails", None, ADMINS),
    ("model-guardrails", "get", "/api/v1/models/credit/guardrails", None, EVERYONE),
    ("model-guardrails-set", "put", "/api/v1/models/credit/guardrails", {"mask_pii": True}, REVIEWERS),
    ("model-guardrails-remove", "delete", "/api/v1/models/credit/guardrails", None, REVIEWERS),
    ("job", "get", "/api/v1/jobs/{j}", None, EVERYONE),
    ("job-cancel", "post", "/api/v1/jobs/{j}/cancel", {}, PREDICTORS),
    ("job-results", "get", "/api/v1/jobs/{j}/results", None, EVERYONE),
    ("bias-reports", "get", "/api/v1/models/credit/versions/1/bias-reports", None, REPORT_READERS),
    ("bias-report-create", "post", "/api/v1/models/credit/versions/1/bias-reports", {}, REPORT_CREATORS),
    ("bias-report", "get", "/api/v1/bias-reports/{b}", None, REPORT_READERS),
    ("bias-report-download", "get", "/api/v1/bias-reports/{b}/download?format=csv", None, REPORT_READERS),
    ("global-explanations", "get", "/api/v1/models/credit/versions/1/global-explanations", None, REPORT_READERS),
    ("global-explanation-create", "post", "/api/v1/models/credit/versions/1/global-explanations",
     {"dataset": "predictions"}, REPORT_CREATORS),
    ("global-explanation", "get", "/api/v1/global-explanations/{g}", None, REPORT_READERS),
    ("training-datasets", "get", "/api/v1/training-datasets", None, REPORT_READERS),
    ("training-dataset-create", "post", "/api/v1/training-datasets", {}, REGISTRARS),
    ("training-dataset", "get", "/api/v1/training-datasets/{d}", None, REPORT_READERS),
    ("fine-tunes", "get", "/api/v1/fine-tunes", None, REPORT_READERS),
    ("fine-tune-create", "post", "/api/v1/fine-tunes", {}, REGISTRARS),
    ("fine-tune", "get", "/api/v1/fine-tunes/{f}", None, REPORT_READERS),
    ("fine-tune-cancel", "post", "/api/v1/fine-tunes/{f}/cancel", {}, REGISTRARS),
    ("canary-audits", "get", "/api/v1/models/credit/versions/1/canary-audits", None, REPORT_READERS),
    ("canary-audit-create", "post", "/api/v1/models/credit/versions/1/canary-audits", {}, REGISTRARS),
    ("canary-audit", "get", "/api/v1/canary-audits/999999", None, REPORT_READERS),
    ("canary-audit-cancel", "post", "/api/v1/canary-audits/999999/cancel", {}, REGISTRARS),
    ("exports-of-version", "get", "/api/v1/models/credit/versions/1/exports", None, REPORT_READERS),
    ("export-create", "post", "/api/v1/models/credit/versions/1/exports", {"period_start": "2099-01-01"}, AUDITORS),
    ("exports", "get", "/api/v1/exports", None, REPORT_READERS),
    ("export", "get", "/api/v1/exports/{c}", None, REPORT_READERS),
    ("export-download", "get", "/api/v1/exports/{c}/download?file=evidence.json", None, REPORT_READERS),
    ("export-schema", "get", "/api/v1/exports/schema", None, EVERYONE),
    ("fairness-policy", "get", "/api/v1/fairness-policy", None, REPORT_READERS),
    ("fairness-policy-update", "put", "/api/v1/fairness-policy", {"min_group_size": 20}, ADMINS),
    ("audit-entries", "get", "/api/v1/audit/entries", None, AUDITORS),
    ("audit-entry", "get", "/api/v1/audit/entries/{e}", None, AUDITORS),
    ("audit-inclusion", "get", "/api/v1/audit/proofs/inclusion?index={e}", None, EVERYONE),
    ("audit-consistency", "get", "/api/v1/audit/proofs/consistency?first=1&second=2", None, EVERYONE),
    ("audit-checkpoints", "get", "/api/v1/audit/checkpoints", None, EVERYONE),
    ("audit-checkpoint-create", "post", "/api/v1/audit/checkpoints", {}, AUDITORS),
    ("audit-public-key", "get", "/api/v1/audit/public-key", None, EVERYONE),
    ("audit-verification", "get", "/api/v1/audit/verification", None, AUDITORS),
    ("audit-verify", "post", "/api/v1/audit/verification", {}, AUDITORS),
    ("audit-export", "get", "/api/v1/audit/export", None, AUDITORS),
    ("audit-erasure", "post", "/api/v1/audit/erasures", {"subject": "someone"}, ADMINS),
    ("audit-redaction-rules", "get", "/api/v1/audit/redaction-rules", None, ADMINS),
    ("audit-redaction-rule-add", "post", "/api/v1/audit/redaction-rules", {"label": "X", "pattern": "X-\\d+"}, ADMINS),
    ("audit-redaction-rule-delete", "delete", "/api/v1/audit/redaction-rules/999999", None, ADMINS),
    ("audit-redaction-preview", "post", "/api/v1/audit/redaction-preview", {"text": "x"}, ADMINS),
    # OpenAI's surface (/v1/): the same roles; `credit` classifies, so the allowed get a 400 or a 404 about it
    ("openai-chat", "post", "/v1/chat/completions", {"model": "credit", "messages": [{"role": "user", "content": "hi"}]},
     PREDICTORS),
    ("openai-completions", "post", "/v1/completions", {"model": "credit", "prompt": "hi"}, PREDICTORS),
    ("openai-embeddings", "post", "/v1/embeddings", {"model": "credit", "input": "hi"}, PREDICTORS),
    ("openai-moderations", "post", "/v1/moderations", {"model": "credit", "input": "hi"}, PREDICTORS),
    ("openai-models", "get", "/v1/models", None, EVERYONE),
    ("openai-model", "get", "/v1/models/credit", None, EVERYONE),
]

# Objects of an organisation: another organisation's members get 404 on these.
OBJECT_CASES = [c for c in CASES if c[0] in {
    "model-guardrails", "model-guardrails-set", "model-guardrails-remove",
    "model", "model-upload", "version", "version-card-edit", "version-delete", "evaluations", "evaluation-create",
    "compressions", "compression-create", "canary-audits", "canary-audit-create",
    "version-retire", "predict", "prediction", "job", "job-cancel", "audit-entry",
    "audit-inclusion", "explain", "explanation", "bias-reports", "bias-report-create", "bias-report", "bias-report-download",
    "global-explanations", "global-explanation-create", "global-explanation", "training-dataset", "fine-tune",
    "fine-tune-cancel", "exports-of-version", "export-create", "export", "export-download",
    "openai-chat", "openai-completions", "openai-embeddings", "openai-moderations", "openai-model",
}]


def objects_of(served: Served) -> dict[str, int]:
    consumer = served.actors["consumer"].user
    prediction = Prediction.objects.create(
        organization=served.org, model_version=served.version, requested_by=consumer,
        inputs={"rows": [ROW], "subject": ""}, rows=1, status="done", outputs=[],
    )
    result = default_storage.save("jobs/matrix-result.csv", ContentFile(b"row,label\n0,grant\n"))
    job = BatchJob.objects.create(
        organization=served.org, model_version=served.version, created_by=consumer, input_name="x.csv",
        input_path="jobs/x.jsonl", input_format="csv", rows_total=1, rows_done=1, status="done",
        result_path=result,
    )
    report = BiasReport.objects.create(
        organization=served.org, model_version=served.version, number=1, kind="tabular", dataset_name="x.csv",
        dataset_sha256="0" * 64, dataset_path="bias/x.json", rows_total=1, rows_done=1, status="done",
        verdict="pass", created_by=consumer, result={"axes": [], "verdict": "pass"},
    )
    entry = LogEntry.objects.filter(organization_id=served.org.pk).order_by("index").first()
    checkpoint_create(force=True)
    explanation = Explanation.objects.create(
        organization=served.org, prediction=prediction, model_version=served.version, requested_by=consumer,
        max_evals=100, status="done", method="exact", label="grant",
        result={"labels": ["deny", "grant"], "base_values": [0.5, 0.5], "output": [0.5, 0.5], "features": [],
                "values": []},
    )
    global_explanation = GlobalExplanation.objects.create(
        organization=served.org, model_version=served.version, number=1, source="upload", dataset_name="x.csv",
        dataset_sha256="0" * 64, dataset_path="explanations/x.json", max_evals=100, rows_total=1, rows_done=1,
        status="done", created_by=consumer,
        result={"kind": "feature", "rows": 1, "methods": ["exact"], "evaluations": 4, "max_residual": 0.0,
                "predicted": {"grant": 1}, "distinct": 0, "ranking": []},
    )
    dataset = TrainingDataset.objects.create(
        organization=served.org, model=served.version.model, name="x.csv", path="training/x.json", sha256="0" * 64,
        train_rows=90, holdout_rows=10, epsilon_cap=8, delta_cap=1e-5, created_by=consumer,
    )
    finetune = FineTuneJob.objects.create(organization=served.org, dataset=dataset, base_version=served.version,
                                          plan={"steps": 1}, status="done", created_by=consumer)
    export = ComplianceExport.objects.create(
        organization=served.org, model_version=served.version, number=1, period_start="2026-01-01",
        period_end="2026-01-31", status="pending", created_by=consumer)
    upload = ModelUpload.objects.create(
        organization=served.org, name="credit", task="tabular-classification", archive_sha256="0" * 64,
        archive_size=1, status="failed", error="refused", created_by=served.actors["owner"].user)
    return {"u": upload.pk, "p": prediction.pk, "j": job.pk, "e": entry.index, "b": report.pk, "x": explanation.pk,
            "g": global_explanation.pk, "d": dataset.pk, "f": finetune.pk, "c": export.pk}


def bearer(user, org, role: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user, org, role).secret}")
    return api


def call(api: APIClient, method: str, path: str, body):
    if body is None:
        return getattr(api, method)(path)
    return getattr(api, method)(path, body, format="json")


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("name", "method", "path", "body", "allowed"), CASES, ids=[c[0] for c in CASES])
def test_own_organisation(tabular, role, name, method, path, body, allowed, settings) -> None:
    # given: a prediction admitted here is never answered (no worker sees this test's uncommitted rows):
    # the allowed get a quick 504, which proves the right as well as a 200 would
    settings.PREDICT_TIMEOUT_SECONDS = 0.5
    ids = objects_of(tabular)
    api = bearer(tabular.actors[role].user, tabular.org, role)
    # when
    response = call(api, method, path.format(**ids), body)
    # then
    if role in allowed:
        assert response.status_code not in (401, 403), (name, role, response.content)
    else:
        assert response.status_code == 403, (name, role, response.status_code, response.content)
        assert response.json()["error"]["code"] in {"forbidden", "token_cannot_manage_tokens"}


@pytest.mark.parametrize(("name", "method", "path", "body", "allowed"), OBJECT_CASES, ids=[c[0] for c in OBJECT_CASES])
def test_other_organisation_gets_404(tabular, name, method, path, body, allowed) -> None:
    # given: an admin of another organisation (every right there, none here)
    ids = objects_of(tabular)
    other = OrganizationFactory()
    stranger = member(Role.ADMIN, other)
    # when
    response = call(bearer(stranger, other, "admin"), method, path.format(**ids), body)
    # then
    assert response.status_code == 404, (name, response.status_code, response.content)
    assert "credit" not in response.content.decode().replace("'credit'", "")  # nothing of the object


ACCOUNTS_ROUTES = {"api-me", "api-organizations", "api-members", "api-member", "api-tokens", "api-token",
                   "api-sent-invitations", "api-invitation-revoke", "api-invitations", "api-invitation-answer"}


def api_route_names(patterns: list[URLPattern | URLResolver], prefix: str = "") -> set[str]:
    names: set[str] = set()
    for pattern in patterns:
        path = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            names |= api_route_names(pattern.url_patterns, path)
        elif (path.startswith("api/v1/") or path.startswith("v1/")) and pattern.name:
            names.add(pattern.name)
    return names


def test_every_api_route_is_in_a_matrix() -> None:
    """A new endpoint must get a row in a rights table (this one, or the accounts one)."""
    covered = {resolve(re.sub(r"\{\w\}", "1", path.split("?")[0])).url_name
               for _, _, path, _, _ in CASES} | ACCOUNTS_ROUTES
    missing = api_route_names(get_resolver().url_patterns) - covered
    assert not missing, f"endpoints without a rights row: {sorted(missing)}"
