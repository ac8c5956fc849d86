"""The day's first requests race for its usage row: a request whose first UPDATE found no row, while
another request made it before this one looked, is served, not refused as over quota. (64 streams
at once found it: some were told 92 tokens of 2,000,000 were "spent".)"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection, connections

from inference.models import UsageDaily
from inference.services.usage import _row, quota_reserve, today, token_quota_reserve

pytestmark = pytest.mark.django_db(transaction=True)


def _another_request_makes_the_row_after_the_first_update(organization_id: int) -> Any:
    made: list[bool] = []

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        result = execute(sql, params, many, context)
        if not made and sql.lstrip().upper().startswith(("UPDATE", "WITH")):
            made.append(True)

            def other() -> None:
                try:
                    _row(organization_id, None, today())  # committed on its own connection
                finally:
                    connections.close_all()

            thread = threading.Thread(target=other)
            thread.start()
            thread.join()
        return result

    return wrapper


@pytest.mark.parametrize("kind", ["tokens", "rows"])
def test_a_reservation_whose_days_row_was_made_meanwhile_is_served(tabular, kind) -> None:
    organization = tabular.org
    assert not UsageDaily.objects.filter(organization=organization).exists()
    with connection.execute_wrapper(_another_request_makes_the_row_after_the_first_update(organization.pk)):
        if kind == "tokens":
            token_quota_reserve(organization=organization, tokens=93)
        else:
            quota_reserve(organization=organization, rows=3)
    row = UsageDaily.objects.get(organization=organization, token__isnull=True)
    assert (row.tokens, row.rows) == ((93, 0) if kind == "tokens" else (0, 3))
