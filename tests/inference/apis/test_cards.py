"""A draft's model card is completed in place (API and pages), each change audited; a draft can be deleted."""

from __future__ import annotations

import io

import pytest
from django.core.files.storage import default_storage
from django.test import Client
from rest_framework.test import APIClient

from audit.log.models import LogEntry
from inference.models import ModelVersion, RegisteredModel
from inference.services.uploads import model_version_register
from portal.accounts.actor import actor_for_membership
from tests.inference.factories import tiny_tabular_archive
from tests.portal.accounts.factories import OrganizationFactory, member, token_for

pytestmark = pytest.mark.django_db

HALF_A_CARD = {"intended_use": "scoring loan requests in tests", "owner": "the credit team"}


@pytest.fixture
def draft(tmp_path):
    org = OrganizationFactory()
    users = {role: member(role, org) for role in ("owner", "reviewer", "consumer")}
    owner = actor_for_membership(users["owner"], org, "owner")
    version = model_version_register(actor=owner, name="credit", task="tabular-classification",
                                     archive=io.BytesIO(tiny_tabular_archive(tmp_path / "m")), card=HALF_A_CARD)
    return org, users, version


def api(org, user, role) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user, org, role).secret}")
    return client


URL = "/api/v1/models/credit/versions/1"


def test_an_incomplete_card_is_completed_in_place_and_each_change_is_audited(draft) -> None:
    org, users, version = draft
    owner = api(org, users["owner"], "owner")
    # submission says what is missing in words, not field names
    refused = owner.post(f"{URL}/submit", {}, format="json")
    assert refused.status_code == 400
    message = refused.json()["error"]["message"]
    assert "does not yet say what it must not be used for, what it was trained on" in message
    assert "out_of_scope_uses" not in message
    assert "out_of_scope_uses" in refused.json()["error"]["details"]["missing"]
    # the owner completes it
    card = {"out_of_scope_uses": "decisions about real people", "training_data": "none: weights set by hand",
            "limitations": "a toy", "ethical_considerations": "none, a toy"}
    edited = owner.patch(URL, {"card": card}, format="json")
    assert edited.status_code == 200, edited.content
    assert edited.json()["card"]["limitations"] == "a toy"
    assert edited.json()["card"]["intended_use"] == HALF_A_CARD["intended_use"]  # the others stay
    entry = LogEntry.objects.get(action="model.card_edited", target_id=str(version.pk))
    assert entry.payload["changes"]["limitations"] == {"from": "", "to": "a toy"}
    assert set(entry.payload["changes"]) == set(card)
    # the same values again change nothing and record nothing
    assert owner.patch(URL, {"card": card}, format="json").status_code == 200
    assert LogEntry.objects.filter(action="model.card_edited").count() == 1
    # then it can be submitted, and a submitted card is frozen
    assert owner.post(f"{URL}/submit", {}, format="json").status_code == 200
    frozen = owner.patch(URL, {"card": {"limitations": "changed after review began"}}, format="json")
    assert frozen.status_code == 409 and "only a draft or rejected version" in frozen.json()["error"]["message"]
    assert ModelVersion.objects.get(pk=version.pk).card["limitations"] == "a toy"


@pytest.mark.parametrize(("body", "status", "needle"), [
    ({"card": {"colour": "blue"}}, 400, "Unknown model card fields: colour"),
    ({"card": {}}, 400, "card"),
    ({"card": {"limitations": "x" * 10_001}}, 400, "10000"),
    ({"card": {"limitations": 3}}, 400, "limitations"),
    ({"cards": {"limitations": "x"}}, 400, "cards"),
])
def test_bad_card_edits_are_refused_and_change_nothing(draft, body, status, needle) -> None:
    org, users, version = draft
    response = api(org, users["owner"], "owner").patch(URL, body, format="json")
    assert response.status_code == status, response.content
    assert needle in str(response.json()["error"])
    assert ModelVersion.objects.get(pk=version.pk).card == version.card
    assert not LogEntry.objects.filter(action="model.card_edited").exists()


def test_only_owners_of_the_organisation_edit_or_delete(draft) -> None:
    org, users, version = draft
    reviewer = api(org, users["reviewer"], "reviewer")  # reads drafts, may not change them
    assert reviewer.patch(URL, {"card": {"limitations": "x"}}, format="json").status_code == 403
    assert reviewer.delete(URL).status_code == 403
    consumer = api(org, users["consumer"], "consumer")  # sees approved versions only: a draft is not found
    assert consumer.patch(URL, {"card": {"limitations": "x"}}, format="json").status_code == 404
    assert consumer.delete(URL).status_code == 404
    stranger_org = OrganizationFactory()
    stranger = api(stranger_org, member("owner", stranger_org), "owner")
    assert stranger.patch(URL, {"card": {"limitations": "x"}}, format="json").status_code == 404
    assert stranger.delete(URL).status_code == 404
    assert ModelVersion.objects.filter(pk=version.pk).exists()


def test_a_draft_is_deleted_with_its_artifact_and_the_log_keeps_that_it_existed(
        draft, django_capture_on_commit_callbacks) -> None:
    org, users, version = draft
    owner = api(org, users["owner"], "owner")
    artifact = version.artifact
    assert default_storage.exists(artifact)
    with django_capture_on_commit_callbacks(execute=True):  # the file goes once the deletion commits
        response = owner.delete(URL)
    assert response.status_code == 204, response.content
    assert not ModelVersion.objects.filter(pk=version.pk).exists()
    assert not RegisteredModel.objects.filter(name="credit", organization=org).exists()  # its only version
    assert not default_storage.exists(artifact)
    entry = LogEntry.objects.get(action="model.draft_deleted", target_id=str(version.pk))
    assert entry.payload == {"model": "credit", "version": 1, "artifact_sha256": version.artifact_sha256}
    assert owner.delete(URL).status_code == 404


def test_a_submitted_version_cannot_be_deleted(draft) -> None:
    org, users, version = draft
    ModelVersion.objects.filter(pk=version.pk).update(status="submitted")
    response = api(org, users["owner"], "owner").delete(URL)
    assert response.status_code == 409 and "only a draft" in response.json()["error"]["message"]
    assert ModelVersion.objects.filter(pk=version.pk).exists()
    assert not LogEntry.objects.filter(action="model.draft_deleted").exists()


def test_the_model_page_edits_the_card_shows_its_history_and_deletes_the_draft(draft) -> None:
    org, users, version = draft
    page = Client()
    page.force_login(users["owner"])
    shown = page.get("/models/credit/").content.decode()
    assert 'data-testid="card-missing"' in shown and "does not yet say what it must not be used for" in shown
    assert 'id="card-limitations"' in shown
    saved = page.post("/models/credit/versions/1/", {"action": "card", "card-limitations": "a toy",
                                                     "card-intended_use": HALF_A_CARD["intended_use"]}, follow=True)
    assert "model card saved" in saved.content.decode()
    assert ModelVersion.objects.get(pk=version.pk).card["limitations"] == "a toy"
    history = page.get("/models/credit/").content.decode()
    assert 'data-testid="card-history"' in history and "limitations changed" in history
    kept = page.post("/models/credit/versions/1/", {"action": "delete"}, follow=True)
    assert "Tick the box" in kept.content.decode() and ModelVersion.objects.filter(pk=version.pk).exists()
    gone = page.post("/models/credit/versions/1/", {"action": "delete", "confirm": "yes"}, follow=True)
    assert gone.status_code == 200 and not ModelVersion.objects.filter(pk=version.pk).exists()
    # a reviewer sees neither the editor nor the delete button
    reviewer = Client()
    reviewer.force_login(users["reviewer"])
    model_version_register(actor=actor_for_membership(users["owner"], org, "owner"), name="credit2",
                           task="tabular-classification",
                           archive=io.BytesIO(tiny_tabular_archive_bytes()), card=HALF_A_CARD)
    other = reviewer.get("/models/credit2/").content.decode()
    assert 'data-testid="edit-card"' not in other and 'data-testid="delete-form"' not in other


def tiny_tabular_archive_bytes() -> bytes:
    import tempfile
    from pathlib import Path

    return tiny_tabular_archive(Path(tempfile.mkdtemp()) / "m")


def test_a_draft_that_work_refers_to_stays(draft) -> None:
    from inference.models import Evaluation

    org, users, version = draft
    Evaluation.objects.create(organization=org, model_version=version, created_by=users["owner"],
                              dataset_name="heldout.csv", dataset_sha256="0" * 64, dataset_path="x", rows_total=10)
    response = api(org, users["owner"], "owner").delete(URL)
    assert response.status_code == 409 and "refer to it" in response.json()["error"]["message"]
    assert ModelVersion.objects.filter(pk=version.pk).exists() and default_storage.exists(version.artifact)
    assert ModelVersion.objects.get(pk=version.pk).transitions.exists()  # its history is kept whole
    assert not LogEntry.objects.filter(action="model.draft_deleted").exists()


def test_the_cards_languages_are_iso_codes_and_a_wrong_one_changes_nothing(draft) -> None:
    org, users, version = draft
    owner = api(org, users["owner"], "owner")
    refused = owner.patch(URL, {"card": {"languages": "klingon", "limitations": "a toy"}}, format="json")
    assert refused.status_code == 400
    assert "'klingon' is not one Steward recognises" in refused.json()["error"]["message"]
    version.refresh_from_db()
    assert version.card["languages"] == "" and version.card["limitations"] == ""  # as before
    edited = owner.patch(URL, {"card": {"languages": "en, zh"}}, format="json")
    assert edited.status_code == 200 and edited.json()["card"]["languages"] == "en, zh"
    page = Client()
    page.force_login(users["owner"])
    assert "English (en), Chinese (zh)" in page.get("/models/credit/").content.decode()
