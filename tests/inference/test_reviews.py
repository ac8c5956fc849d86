"""A reviewer's inbox: what waits, what changed against production, and Approve refused with the reason."""

from __future__ import annotations

import io
import re

import pytest
from django.test import Client

from inference.services.registry import model_version_transition
from inference.services.uploads import model_version_register
from tests.inference.factories import CARD, bearer_client, tiny_tabular_archive

pytestmark = pytest.mark.django_db


@pytest.fixture
def submitted(tabular, tmp_path):
    """credit v1 in production; v2 submitted by the owner with a changed card and better measured accuracy."""
    from inference.models import ModelVersion

    ModelVersion.objects.filter(pk=tabular.version.pk).update(metrics={"evaluation": {"accuracy": 0.8, "roc_auc": 0.9}})
    version = model_version_register(actor=tabular.actors["owner"], name="credit", task="tabular-classification",
                                     archive=io.BytesIO(tiny_tabular_archive(tmp_path / "v2", bias=1.0)),
                                     card={**CARD, "limitations": "a toy, now with a bias term"})
    ModelVersion.objects.filter(pk=version.pk).update(metrics={"evaluation": {"accuracy": 0.85, "roc_auc": 0.92}})
    model_version_transition(actor=tabular.actors["owner"], version=version, action="submit")
    return version


def test_the_inbox_shows_what_changed_and_approves_where_allowed(tabular, submitted) -> None:
    body = bearer_client(tabular, "reviewer").get("/api/v1/reviews")
    assert body.status_code == 200, body.content
    [review] = body.json()
    assert (review["model"], review["version"], review["production_version"]) == ("credit", 2, 1)
    assert review["card_changed"] == ["limitations"]
    assert {"name": "accuracy", "production": 0.8, "this": 0.85} in review["metrics"]
    assert review["approvable"] and review["refusals"] == []
    assert {e["title"] for e in review["production_evidence"]} == {e["title"] for e in review["evidence"]}
    page = Client()
    page.force_login(tabular.actors["reviewer"].user)
    shown = page.get("/reviews/").content.decode()
    assert "credit v2" in shown and "Model card: limitations" in shown and "approve-refused" not in shown
    assert 'data-testid="evidence-changes"' in shown
    assert "1 version waits for your review" in re.sub(r"<[^>]+>", "", page.get("/").content.decode())


def test_approve_is_refused_with_the_reason_before_it_is_pressed(tabular, submitted) -> None:
    from audit.fairness.models import FairnessPolicy

    FairnessPolicy.objects.create(organization=tabular.org, require_passing_report=True)
    [review] = bearer_client(tabular, "reviewer").get("/api/v1/reviews").json()
    assert not review["approvable"] and "requires a passing bias report" in review["refusals"][0]
    page = Client()
    page.force_login(tabular.actors["reviewer"].user)
    shown = page.get("/reviews/").content.decode()
    assert 'value="approve" disabled' in shown and "requires a passing bias report" in shown


def test_only_reviewers_have_an_inbox(tabular, submitted) -> None:
    assert bearer_client(tabular, "consumer").get("/api/v1/reviews").status_code == 403
    assert bearer_client(tabular, "owner").get("/api/v1/reviews").status_code == 403
    page = Client()
    page.force_login(tabular.actors["owner"].user)
    assert page.get("/reviews/").status_code == 403
    text = re.sub(r"<[^>]+>", "", page.get("/").content.decode())
    assert "draft or rejected version" in text and "for your review" not in text  # the owner's own work instead


def test_the_auditors_dashboard_leads_to_the_log(tabular) -> None:
    page = Client()
    page.force_login(tabular.actors["auditor"].user)
    text = re.sub(r"<[^>]+>", "", page.get("/").content.decode())
    assert "The log has not been verified yet" in text or "Latest verification of the whole log" in text
    assert "for your review" not in text
