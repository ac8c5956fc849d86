"""The audit console's API: who may read what, proofs for receipts, exports, erasure."""

from __future__ import annotations

import io
import time
import zipfile

import pytest
from rest_framework.test import APIClient

from audit.log.models import LogEntry, RedactionRule, VerificationRun
from audit.log.services import checkpoint_create
from audit.log.signing import load_public_key
from audit.log.verifier import verify_inclusion_document
from audit.log.verify import verify_bundle
from portal.accounts.roles import Role
from tests.portal.accounts.factories import OrganizationFactory, member, token_for
from tests.waits import patience

ROLES = [r.value for r in Role]


@pytest.fixture
def orgs(db):
    own, other = OrganizationFactory(slug="own"), OrganizationFactory(slug="other")
    users = {role: member(role, own) for role in ROLES}
    stranger = member(Role.ADMIN, other)
    token_for(stranger, other, name="their token")  # an entry of the other organisation
    token_for(users["consumer"], own, name="our token")  # one of ours
    checkpoint_create()
    return own, other, users, stranger


def client_for(user, org) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user, org).secret}")
    return client


def own_entry(org) -> LogEntry:
    return LogEntry.objects.filter(organization_id=org.pk, action="token.created").first()


def other_entry(org) -> LogEntry:
    return LogEntry.objects.filter(organization_id=org.pk, action="token.created").first()


@pytest.mark.parametrize("role", ROLES)
def test_only_auditors_and_admins_read_the_log(orgs, role) -> None:
    own, _other, users, _ = orgs
    response = client_for(users[role], own).get("/api/v1/audit/entries")
    assert response.status_code == (200 if role in ("auditor", "admin") else 403)


def test_the_log_shows_only_the_own_organisation(orgs) -> None:
    own, other, users, _ = orgs
    client = client_for(users["auditor"], own)
    body = client.get("/api/v1/audit/entries?limit=500").json()
    orgs_seen = {e["organization_id"] for e in body["results"]}
    assert orgs_seen <= {own.pk, None}
    assert client.get(f"/api/v1/audit/entries/{other_entry(other).index}").status_code == 404
    detail = client.get(f"/api/v1/audit/entries/{own_entry(own).index}").json()
    assert detail["entry"]["action"] == "token.created" and detail["proof"]["path"] is not None


def test_filters_and_paging(orgs) -> None:
    own, _, users, _ = orgs
    client = client_for(users["admin"], own)
    tokens = client.get("/api/v1/audit/entries?action=token.&limit=1").json()
    assert len(tokens["results"]) == 1 and tokens["results"][0]["action"] == "token.created"
    older = client.get(f"/api/v1/audit/entries?action=token.&limit=1&before={tokens['next_before']}").json()
    assert older["results"][0]["index"] < tokens["results"][0]["index"]
    assert client.get("/api/v1/audit/entries?limit=0").status_code == 400
    assert client.get("/api/v1/audit/entries?since=yesterday").status_code == 400
    assert client.get("/api/v1/audit/entries?colour=red").status_code == 400


@pytest.mark.parametrize("role", ROLES)
def test_any_member_proves_a_receipt_of_their_organisation(orgs, role) -> None:
    own, other, users, _ = orgs
    client = client_for(users[role], own)
    proof = client.get(f"/api/v1/audit/proofs/inclusion?index={own_entry(own).index}")
    assert proof.status_code == 200
    key = load_public_key(APIClient().get("/api/v1/audit/public-key").json()["pem"])
    assert verify_inclusion_document(proof.json(), key) is None
    foreign = client.get(f"/api/v1/audit/proofs/inclusion?index={other_entry(other).index}")
    assert foreign.status_code == 404


def test_verification_before_any_run_is_404(orgs) -> None:
    own, _, users, _ = orgs
    response = client_for(users["auditor"], own).get("/api/v1/audit/verification")
    assert response.status_code == 404 and "not been verified" in response.json()["error"]["message"]


def test_uncovered_entry_has_no_proof_yet(orgs) -> None:
    own, _, users, _ = orgs
    client = client_for(users["auditor"], own)  # creating this token appended an entry
    newest = LogEntry.objects.order_by("-index").first()
    response = client.get(f"/api/v1/audit/proofs/inclusion?index={newest.index}")
    assert response.status_code == 404 and "not covered" in response.json()["error"]["message"]
    assert client.post("/api/v1/audit/checkpoints").status_code == 201
    assert client.get(f"/api/v1/audit/proofs/inclusion?index={newest.index}").status_code == 200


def test_consistency_proof(orgs) -> None:
    own, _, users, _ = orgs
    body = client_for(users["consumer"], own).get("/api/v1/audit/proofs/consistency?first=1&second=3").json()
    assert body["first"] == 1 and len(body["path"]) == 2
    bad = client_for(users["consumer"], own).get("/api/v1/audit/proofs/consistency?first=9&second=5")
    assert bad.status_code == 404


def test_export_verifies_offline_and_is_audited(orgs, tmp_path) -> None:
    own, _other, users, _ = orgs
    session = APIClient()
    session.force_login(users["auditor"])
    response = session.get("/api/v1/audit/export")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    path = tmp_path / "export.zip"
    path.write_bytes(response.content)
    key = APIClient().get("/api/v1/audit/public-key").json()["pem"].encode()
    report = verify_bundle(path, key)
    assert report.ok, report.summary()
    with zipfile.ZipFile(io.BytesIO(response.content)) as bundle:
        text = bundle.read("entries.jsonl").decode()
    assert "their token" not in text and "our token" in text
    assert LogEntry.objects.filter(action="audit_log.exported", organization_id=own.pk).exists()


def test_only_admins_erase_and_redact(orgs) -> None:
    own, _, users, _ = orgs
    for role in ROLES:
        response = client_for(users[role], own).post("/api/v1/audit/erasures", {"subject": "x"}, format="json")
        assert response.status_code == (201 if role == "admin" else 403)
    admin = client_for(users["admin"], own)
    created = admin.post("/api/v1/audit/redaction-rules", {"label": "MRN", "pattern": r"MRN-\d+"}, format="json")
    assert created.status_code == 201
    assert LogEntry.objects.get(action="redaction_rule.created", target_id=str(created.json()["id"])).payload["label"] == "MRN"
    rules_before, entries_before = RedactionRule.objects.count(), LogEntry.objects.count()
    bad = admin.post("/api/v1/audit/redaction-rules", {"label": "ALL", "pattern": ".*"}, format="json")
    assert bad.status_code == 400 and "empty" in bad.json()["error"]["message"]
    assert bad.json()["error"]["code"] == "invalid_redaction_rule"
    badly_named = admin.post("/api/v1/audit/redaction-rules", {"label": "mrn", "pattern": r"X-\d+"}, format="json")
    assert badly_named.status_code == 400 and "capital letters" in badly_named.json()["error"]["message"]
    # a refused rule leaves neither a rule nor an entry behind
    assert (RedactionRule.objects.count(), LogEntry.objects.count()) == (rules_before, entries_before)


def test_organisation_pattern_redacts_later_entries(orgs) -> None:
    own, _, users, _ = orgs
    admin = client_for(users["admin"], own)
    admin.post("/api/v1/audit/redaction-rules", {"label": "CASE", "pattern": r"CASE-\d{4}"}, format="json")
    session = APIClient()
    session.force_login(users["owner"])
    session.post("/api/v1/tokens", {"name": "for CASE-1234"}, format="json")
    entry = LogEntry.objects.filter(action="token.created").order_by("-index").first()
    assert entry.payload["name"] == "for [CASE]"


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_verification_runs_on_a_real_worker(celery_worker) -> None:
    org = OrganizationFactory()
    auditor = member(Role.AUDITOR, org)
    checkpoint_create()
    client = APIClient()
    client.force_login(auditor)
    # Other tests may have queued verifications too: wait for one started after this request.
    before = VerificationRun.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    assert client.post("/api/v1/audit/verification").status_code == 202
    deadline = time.monotonic() + patience(30)
    while time.monotonic() < deadline and not VerificationRun.objects.filter(pk__gt=before, ok__isnull=False).exists():
        time.sleep(0.2)
    assert VerificationRun.objects.filter(pk__gt=before, ok__isnull=False).exists(), "no verification ran"
    body = client.get("/api/v1/audit/verification").json()
    # the request's own entry came after the checkpoint: it is reported as not yet verified, never as OK
    assert body["entries"] >= 1 and body["checkpoints"] >= 1, body
    assert (body["ok"], body["fault_kind"]) == (False, "unverified_tail") and "UNVERIFIED TAIL" in body["summary"], body
