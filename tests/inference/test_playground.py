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
