"""Row locks that order writers of a row without stopping the rows that refer to it.

Django's `select_for_update()` takes PostgreSQL's strongest row lock, FOR UPDATE, on every table of the
query: the tables a `select_related` joins, and those a `Meta.ordering` over a relation joins
(`Membership` orders by its organisation's name, `ModelVersion` by its model's). FOR UPDATE conflicts
with the FOR KEY SHARE lock that a foreign-key check takes on the row referred to, and Django's foreign
keys are DEFERRABLE INITIALLY DEFERRED: those checks run at COMMIT, after a transaction has appended to
the audit log and so holds its head. Locking the organisation's admins to remove a member thereby locked
the organisation's row; a prediction of that organisation, holding the head, waited at its commit for
that row while the removal waited for the head: a deadlock (CI's schemathesis run, DELETE
/api/v1/members/2 answered 503), and every commit that refers to the locked row stalls meanwhile.

`for_update` locks only the queryset's own rows (OF self), FOR NO KEY UPDATE (what each lock here is
for: a writer that keeps the row's key; it still excludes the other writers, and a DELETE takes its
own lock), in primary-key order (two transactions locking several rows meet in one order).
"""

from __future__ import annotations

from typing import TypeVar

from django.db.models import Model, QuerySet

M = TypeVar("M", bound=Model)


def for_update(queryset: QuerySet[M]) -> QuerySet[M]:
    """`queryset`'s rows, locked until the transaction ends, as the module says."""
    return queryset.select_for_update(no_key=True, of=("self",)).order_by("pk")
