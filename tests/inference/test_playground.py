"""The playground starts from a typical input of the version, not the first option of each menu."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_the_tabular_playground_starts_from_the_versions_typical_row(tabular) -> None:
    # the tiny model ships 20 background rows: incomes i*7 % 100, regions alternating north and south
    incomes = sorted(float(i * 7 % 100) for i in range(20))
    median = (incomes[9] + incomes[10]) / 2
    assert tabular.version.input_schema["typical"] == {"income": median, "region": "north"}
    client = Client()
    client.force_login(tabular.actors["consumer"].user)
    page = client.get("/models/credit/playground/").content.decode()
    assert f'value="{median}"' in page and "<option selected>north</option>" in page


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_owners_and_reviewers_try_a_draft_which_the_log_marks_not_approved(celery_worker, tabular, tmp_path) -> None:
    import io

    from audit.log.models import LogEntry
    from inference.services.uploads import model_version_register
    from tests.inference.factories import CARD, tiny_tabular_archive

    draft = model_version_register(actor=tabular.actors["owner"], name="credit", task="tabular-classification",
                                   archive=io.BytesIO(tiny_tabular_archive(tmp_path / "v2", bias=2.0)), card=CARD)
    assert draft.version == 2 and draft.status == "draft"
    for role in ("owner", "reviewer"):
        client = Client()
        client.force_login(tabular.actors[role].user)
        card = client.get("/models/credit/?v=2").content.decode()
        assert 'data-testid="try-version"' in card and "/models/credit@2/playground/" in card
        page = client.get("/models/credit@2/playground/").content.decode()
        assert 'data-testid="trial-banner"' in page and "not approved" in page
        assert 'hx-post="/models/credit@2/playground/predict/"' in page
        answer = client.post("/models/credit@2/playground/predict/", {"income": "10", "region": "north"})
        assert answer.status_code == 200 and 'data-testid="prediction-label"' in answer.content.decode()
    tried = LogEntry.objects.filter(action="prediction.completed", payload__version=2)
    assert tried.count() == 2
    assert all(e.payload["approved"] is False and e.payload["version_status"] == "draft" for e in tried)
    # the production version's predictions carry no such mark
    client = Client()
    client.force_login(tabular.actors["consumer"].user)
    client.post("/models/credit/playground/predict/", {"income": "10", "region": "north"})
    served = LogEntry.objects.filter(action="prediction.completed", payload__version=1).get()
    assert "approved" not in served.payload
    # consumers never see the draft, and the API does not serve it
    assert client.get("/models/credit@2/playground/").status_code == 404
    assert "try-version" not in client.get("/models/credit/").content.decode()
    from tests.inference.factories import bearer_client

    owner_api = bearer_client(tabular, "owner")
    refused = owner_api.post("/api/v1/models/credit@2/predict", {"inputs": [{"income": 10, "region": "north"}]},
                             format="json")
    assert refused.status_code == 409 and "only approved versions serve" in refused.json()["error"]["message"]
