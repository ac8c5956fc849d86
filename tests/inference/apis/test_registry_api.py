"""The registry through the REST API: upload, review, aliases, visibility by role and tenant."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from inference.models import ModelVersion
from portal.accounts.roles import Role
from tests.inference.factories import CARD, tiny_tabular_archive
from tests.portal.accounts.factories import OrganizationFactory, token_for

pytestmark = pytest.mark.django_db
ROLES = [r.value for r in Role]


def client(served, role) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(served.actors[role].user, served.org, role).secret}")
    return api


def upload(api, tmp_path, name="scoring", card=CARD):
    path = tmp_path / f"{name}.zip"
    path.write_bytes(tiny_tabular_archive(tmp_path / f"dir-{name}"))
    with path.open("rb") as handle:
        return api.post("/api/v1/models", {"name": name, "task": "tabular-classification", "archive": handle,
                                           "card": json.dumps(card)}, format="multipart")


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_who_may_register(celery_worker, tabular, tmp_path, role) -> None:
    response = upload(client(tabular, role), tmp_path)
    assert response.status_code == (201 if role in ("owner", "admin") else 403), response.content


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_review_flow_through_the_api(celery_worker, tabular, tmp_path) -> None:
    owner, reviewer = client(tabular, "owner"), client(tabular, "reviewer")
    version = upload(owner, tmp_path).json()
    base = f"/api/v1/models/scoring/versions/{version['version']}"
    assert reviewer.post(f"{base}/approve", {}, format="json").status_code == 409  # not submitted
    assert owner.post(f"{base}/submit", {}, format="json").status_code == 200
    assert owner.post(f"{base}/approve", {}, format="json").status_code == 403  # owners do not review
    rejected = reviewer.post(f"{base}/reject", {}, format="json")
    assert rejected.status_code == 409 and "comment" in rejected.json()["error"]["message"]
    approved = reviewer.post(f"{base}/approve", {"comment": "metrics fine"}, format="json")
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert [t["to_status"] for t in approved.json()["transitions"]] == ["draft", "submitted", "approved"]
    assert reviewer.put("/api/v1/models/scoring/aliases/production", {"version": 1}, format="json").status_code == 403
    moved = owner.put("/api/v1/models/scoring/aliases/production", {"version": 1}, format="json")
    assert moved.status_code == 200
    assert owner.get("/api/v1/models/scoring").json()["aliases"] == {"production": 1}


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_consumers_see_only_approved_versions(celery_worker, tabular, tmp_path) -> None:
    upload(client(tabular, "owner"), tmp_path, name="draft-only")
    names = {m["name"] for m in client(tabular, "consumer").get("/api/v1/models").json()}
    assert names == {"credit"}
    assert client(tabular, "consumer").get("/api/v1/models/draft-only").status_code == 404
    assert client(tabular, "auditor").get("/api/v1/models/draft-only").status_code == 200


def test_other_tenants_models_are_invisible(tabular) -> None:
    stranger_org = OrganizationFactory()
    from tests.portal.accounts.factories import member

    stranger = member(Role.ADMIN, stranger_org)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(stranger, stranger_org).secret}")
    assert api.get("/api/v1/models").json() == []
    assert api.get("/api/v1/models/credit").status_code == 404
    assert api.post("/api/v1/models/credit/versions/1/retire", {}, format="json").status_code == 404
    assert ModelVersion.objects.get().status == "approved"


def test_bad_card_json_and_unknown_fields(tabular, tmp_path) -> None:
    owner = client(tabular, "owner")
    response = upload(owner, tmp_path, card={"colour": "blue"})
    assert response.status_code == 400 and "colour" in response.json()["error"]["message"]


def test_serving_references_that_point_nowhere_get_404_saying_what_is_missing(tabular) -> None:
    consumer = client(tabular, "consumer")
    row = {"inputs": [{"income": 10, "region": "north"}]}
    for ref, message in [("nope", "No model named 'nope'"), ("credit@staging", "has no alias 'staging'"),
                         ("credit@9", "has no version 9"),
                         ("credit@99999999999999999999", "has no version 99999999999999999999")]:
        response = consumer.post(f"/api/v1/models/{ref}/predict", row, format="json")
        assert response.status_code == 404, ref
        assert message in response.content.decode(), response.content
    # Another tenant's model of that name does not exist for this one.
    stranger_org = OrganizationFactory()
    from tests.portal.accounts.factories import member

    stranger = member(Role.ADMIN, stranger_org)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(stranger, stranger_org).secret}")
    response = api.post("/api/v1/models/credit/predict", row, format="json")
    assert response.status_code == 404
    assert "No model named 'credit'" in response.content.decode()


def test_serving_resolution_reads_what_the_orm_reads_in_one_query(tabular, django_assert_num_queries) -> None:
    """The prebuilt resolution (portal/platform/prebuilt.py) against the ORM's select_related, by alias and by number."""
    from inference import selectors
    from inference.models import ModelAlias

    actor = tabular.actors["consumer"]
    reference = ModelAlias.objects.select_related("version__model").get(model__name="credit", name="production").version
    for ref in ("credit", "credit@production", f"credit@{reference.version}"):
        with django_assert_num_queries(1):
            found = selectors.version_resolve_for_serving(actor=actor, ref=ref)
            assert found.model.name == "credit"  # the model came with it: no second query
        for mine, theirs in ((found, reference), (found.model, reference.model)):
            fields = type(mine)._meta.concrete_fields
            assert [f.value_from_object(mine) for f in fields] == [f.value_from_object(theirs) for f in fields]
        assert isinstance(found.labels, list) and isinstance(found.card, dict)  # JSON came back decoded
