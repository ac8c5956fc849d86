"""Canary audits through the REST API and the pages, on the real generation worker and the demo assistant's
real weights: a private LoRA version's fine-tuning repeated with secret canaries, charged to its dataset's
ledger, the exposures of the base, the private and the non-private run against the bound epsilon implies,
on the card, in the compliance export; refusals leave nothing behind."""

from __future__ import annotations

import csv
import io
import math
from datetime import timedelta

import jsonschema
import pytest
from django.test import Client
from django.utils import timezone
from pypdf import PdfReader

from audit.exports import document, pdf, tables
from audit.log.models import LogEntry
from inference.ml import canaries, dp_accounting
from inference.models import CanaryAudit, FineTuneJob, ModelVersion, PrivacyLedgerEntry, TrainingDataset
from tests.inference.apis.test_private_lora import messages, text_file
from tests.inference.factories import bearer_client
from tests.waits import finished

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def fine_tuned(assistant, *, epsilon_cap: float, records: int = 24) -> tuple[TrainingDataset, FineTuneJob]:
    """A private LoRA version of the assistant as its fine-tuning run leaves it: the records stored through the
    API, the run's job (plan, adapters, settled ledger entry) and its draft version. The run itself is tested
    end to end in tests/inference/apis/test_private_lora.py; an audit reads only what it leaves."""
    owner = bearer_client(assistant, "owner")
    created = owner.post("/api/v1/training-datasets", {"model": "assistant", "file": text_file(messages(records)),
                                                       "epsilon_cap": epsilon_cap, "delta_cap": 1e-3},
                         format="multipart")
    assert created.status_code == 201, created.content
    dataset = TrainingDataset.objects.get(pk=created.json()["id"])
    base = ModelVersion.objects.get(model__organization=assistant.org, version=1)
    user = assistant.actors["owner"].user
    plan = dp_accounting.plan_run(target_epsilon=4, target_delta=1e-3, rows=dataset.train_rows, epochs=1,
                                  batch_size=8, learning_rate=2e-3, max_grad_norm=1.0)
    version = ModelVersion.objects.create(
        model=base.model, version=2, task=base.task, framework=base.framework, labels=base.labels,
        input_schema=base.input_schema, artifact=base.artifact, artifact_sha256=base.artifact_sha256,
        artifact_size=base.artifact_size, card=base.card, created_by=user,
        privacy={"epsilon": 3.99, "delta": 1e-3, "unit": "one record (example-level privacy)"})
    job = FineTuneJob.objects.create(
        organization=assistant.org, dataset=dataset, base_version=base, result_version=version, plan=plan.as_dict(),
        adapter={"method": "lora", "rank": 4, "alpha": 16.0, "targets": ["q_proj", "v_proj"]}, status="done",
        steps_done=plan.steps, epsilon_spent=3.99, created_by=user)
    PrivacyLedgerEntry.objects.create(dataset=dataset, job=job, state="settled", noise_multiplier=plan.noise_multiplier,
                                      sample_rate=plan.sample_rate, steps_reserved=plan.steps, steps_spent=plan.steps,
                                      epsilon_planned=4)
    return dataset, job


def test_a_canary_audit_measures_exposure_against_the_bound_end_to_end(assistant) -> None:
    from transformers import AutoTokenizer

    from inference.ml.language_models import load_causal_lm
    from inference.runtime import artifact_folder

    owner, auditor = bearer_client(assistant, "owner"), bearer_client(assistant, "auditor")
    dataset, job = fine_tuned(assistant, epsilon_cap=6)
    url = f"/api/v1/models/assistant/versions/{job.result_version.version}/canary-audits"
    asked = owner.post(url, {"canaries": 3, "references": 60, "compare": True}, format="json")
    assert asked.status_code == 202, asked.content
    audit = asked.json()
    # the fine-tune's request on its 22 records and 3 canaries: 25 rows, 4 steps of an expected 8
    assert dataset.train_rows == 22
    assert audit["plan"]["rows"] == 25 and audit["steps_total"] == 4 and audit["plan"]["target_epsilon"] == 4
    assert audit["params"] == {"format": "account", "digits": 9, "canaries": 3, "insertions": 1, "references": 60,
                               "compare": True}
    # when
    audit = finished(auditor, f"/api/v1/canary-audits/{audit['id']}", timeout=900)
    # then: three arms, each canary's exposure, the bound of the private run's epsilon
    assert audit["status"] == "done", audit
    found = audit["result"]
    assert set(found) >= {"base", "private", "non_private", "bound", "within_bound", "space_bits"}
    entry = PrivacyLedgerEntry.objects.get(audit_id=audit["id"])
    assert entry.state == "settled" and entry.steps_spent == 4 and entry.job_id is None
    spent = dp_accounting.composed_epsilon([(entry.noise_multiplier, entry.sample_rate, 4)], 1e-3)
    assert found["private"]["epsilon"] == pytest.approx(spent, rel=1e-4) and 0 < spent <= 4 + 1e-6
    assert found["bound"] == pytest.approx(canaries.exposure_bound(found["private"]["epsilon"], 1e-3, 1,
                                                                   9 * math.log2(10)), abs=1e-3)
    assert found["within_bound"] is (found["private"]["mean_exposure"] <= found["bound"])
    assert found["within_bound"]  # a 4-step private run cannot have memorised a canary seen a few times
    stored = CanaryAudit.objects.get(pk=audit["id"])
    secrets = stored.drawn["canaries"]
    for arm in ("base", "private", "non_private"):
        assert [c["secret"] for c in found[arm]["canaries"]] == secrets
        assert all(0 <= c["exposure"] <= found["space_bits"] for c in found[arm]["canaries"])
    # the base's exposures, recomputed here from its weights, are the audit's
    folder = artifact_folder(ModelVersion.objects.get(model__organization=assistant.org, version=1))
    base = canaries.measure(load_causal_lm(folder), AutoTokenizer.from_pretrained(str(folder)), canaries.Space(),
                            secrets, stored.drawn["references"])
    assert [c["nll"] for c in found["base"]["canaries"]] == pytest.approx([c["nll"] for c in base["canaries"]],
                                                                         abs=1e-3)
    assert found["base"]["mean_exposure"] == pytest.approx(base["mean_exposure"], abs=1e-2)
    # the ledger shows both runs; the dataset's budget is spent by both
    ledger = owner.get(f"/api/v1/training-datasets/{dataset.pk}").json()
    assert [(e["job"], e["audit"]) for e in ledger["ledger"]] == [(job.pk, None), (None, audit["id"])]
    assert ledger["budget"]["epsilon_spent"] > job.epsilon_spent
    actions = set(LogEntry.objects.values_list("action", flat=True))
    assert {"canary_audit.requested", "canary_audit.completed", "privacy.settled"} <= actions
    # no more room in the budget: a second audit is refused, and nothing is stored
    again = owner.post(url, {"canaries": 3, "references": 60}, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "privacy_budget_exceeded"
    assert CanaryAudit.objects.count() == 1 and PrivacyLedgerEntry.objects.count() == 2
    # the card: the model page's guarantee and its evidence
    version = job.result_version
    page = Client()
    page.force_login(assistant.actors["auditor"].user)
    model_page = page.get(f"/models/assistant/?v={version.version}").content.decode()
    assert "Privacy audit (canaries)" in model_page and 'data-testid="canary-audits"' in model_page
    assert f"canary audit {audit['id']}" in page.get(f"/privacy/datasets/{dataset.pk}/").content.decode()
    finished_once = owner.post(f"/api/v1/canary-audits/{audit['id']}/cancel", {}, format="json")
    assert finished_once.status_code == 409 and finished_once.json()["error"]["code"] == "job_not_cancellable"
    report = page.get(f"/canary-audits/{audit['id']}/").content.decode()
    assert 'data-testid="canary-result"' in report and "within the bound" in report
    assert all(s in report for s in secrets) and f"{found['bound']:.2f}" in report
    # the compliance export: JSON (valid), the CSV of exposures, the PDF's section
    today = timezone.localdate()
    built = document.build(version=version, number=1, period=(today - timedelta(days=6), today),
                           generated_by="auditor", excerpt=[])
    jsonschema.Draft202012Validator(document.schema()).validate(built)
    assert built["privacy"]["canary_audit"]["id"] == audit["id"]
    nist = {r["item"]: r for r in built["regulatory_mapping"]["nist_ai_rmf"]}
    assert any(f"canary audit {audit['id']}" in e for e in nist["MEASURE 2.10"]["evidence"])
    rows = list(csv.DictReader(io.StringIO(tables.tables(built)["tables/canary_exposures.csv"].decode())))
    assert [r["secret"] for r in rows] == secrets
    assert [float(r["exposure_private"]) for r in rows] == [c["exposure"] for c in found["private"]["canaries"]]
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.render(built))).pages)
    assert "Empirical privacy audit (canaries)" in text and "within it" in text


def _fine_tuned_row(assistant, *, cap: float = 20.0) -> ModelVersion:
    return fine_tuned(assistant, epsilon_cap=cap)[1].result_version


@pytest.mark.parametrize(("body", "status", "needle"), [
    ({"canaries": 1}, 400, "canaries must be a whole number between 2 and 50"),
    ({"references": 10}, 400, "references"),
    ({"insertions": 17}, 400, "insertions"),
    ({"format": "password"}, 400, "format"),
    ({"digits": 5}, 400, "digits must be a whole number between 6 and 15"),
    ({"extra": 1}, 400, "extra"),
])
def test_bad_audits_are_refused_before_anything_is_reserved(assistant, body, status, needle) -> None:
    version = _fine_tuned_row(assistant)
    owner = bearer_client(assistant, "owner")
    refused = owner.post(f"/api/v1/models/assistant/versions/{version.version}/canary-audits", body, format="json")
    assert refused.status_code == status, refused.content
    assert needle in refused.content.decode() and "Traceback" not in refused.content.decode()
    assert not CanaryAudit.objects.exists() and PrivacyLedgerEntry.objects.count() == 1


def test_only_privately_fine_tuned_generative_versions_are_audited(assistant) -> None:
    owner = bearer_client(assistant, "owner")
    refused = owner.post("/api/v1/models/assistant/versions/1/canary-audits", {}, format="json")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_auditable"
    assert "was not fine-tuned in Steward" in refused.json()["error"]["message"]
    assert not CanaryAudit.objects.exists()


def test_an_audit_beyond_the_budget_is_refused(assistant) -> None:
    version = _fine_tuned_row(assistant, cap=4.2)
    owner = bearer_client(assistant, "owner")
    refused = owner.post(f"/api/v1/models/assistant/versions/{version.version}/canary-audits", {}, format="json")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "privacy_budget_exceeded"
    assert not CanaryAudit.objects.exists() and PrivacyLedgerEntry.objects.count() == 1


def test_rights_and_tenancy_of_audits(assistant, tabular) -> None:
    version = _fine_tuned_row(assistant)
    url = f"/api/v1/models/assistant/versions/{version.version}/canary-audits"
    assert bearer_client(assistant, "consumer").get(url).status_code == 403
    assert bearer_client(assistant, "auditor").post(url, {}, format="json").status_code == 403
    assert bearer_client(assistant, "auditor").get(url).json() == []
    stranger = bearer_client(tabular, "owner")  # another organisation's: as if it did not exist
    assert stranger.get(url).status_code == 404 and stranger.post(url, {}, format="json").status_code == 404
    assert not CanaryAudit.objects.exists()


def test_the_model_page_offers_the_audit_and_says_why_it_is_refused(assistant) -> None:
    version = _fine_tuned_row(assistant, cap=4.2)
    page = Client()
    page.force_login(assistant.actors["owner"].user)
    shown = page.get(f"/models/assistant/?v={version.version}").content.decode()
    assert 'data-testid="canary-form"' in shown and "Not audited yet" in shown
    answer = page.post(f"/models/assistant/versions/{version.version}/canary-audits/",
                       {"canaries": "3", "insertions": "1", "references": "100", "compare": "on"}, follow=True)
    assert "would exceed the privacy budget" in answer.content.decode()
    bad = page.post(f"/models/assistant/versions/{version.version}/canary-audits/", {"canaries": "x"}, follow=True)
    assert "Canaries must be a whole number." in bad.content.decode()
    assert not CanaryAudit.objects.exists()


def test_an_audit_cancelled_before_a_worker_takes_it_spends_nothing(assistant) -> None:
    from django.db import transaction

    from inference.services import canary_audits
    from portal.accounts.actor import actor_for_membership

    version = _fine_tuned_row(assistant)
    user = assistant.actors["owner"].user
    actor = actor_for_membership(user, assistant.org, "owner")
    with transaction.atomic():  # the task is sent when this commits: the worker then finds it cancelled
        audit = canary_audits.canary_audit_create(actor=actor, version=version, canaries=2, references=50)
        assert PrivacyLedgerEntry.objects.get(audit=audit).state == "reserved"
        canary_audits.canary_audit_cancel(actor=actor, audit=audit)
    audit.refresh_from_db()
    assert audit.status == "cancelled" and audit.cancel_requested and audit.result is None
    entry = PrivacyLedgerEntry.objects.get(audit=audit)
    assert entry.state == "settled" and entry.steps_spent == 0
    assert {"canary_audit.requested", "canary_audit.cancel_requested", "privacy.settled"} <= set(
        LogEntry.objects.values_list("action", flat=True))
    again = bearer_client(assistant, "owner").post(f"/api/v1/canary-audits/{audit.pk}/cancel", {}, format="json")
    assert again.status_code == 409
