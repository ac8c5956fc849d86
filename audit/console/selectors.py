from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from audit.log import selectors as log
from audit.log.models import LogEntry
from portal.accounts.actor import Actor
from portal.accounts.selectors import member_user_ids


def entry_list_for_actor(*, viewer: Actor, filters: dict[str, Any]) -> QuerySet[LogEntry]:
    """The entries `viewer` may read, narrowed by `filters` (whose `actor` is the name searched for)."""
    return log.entry_list(
        organization_id=viewer.organization.pk,
        member_user_ids=member_user_ids(organization=viewer.organization),
        **filters,
    )


def entry_get_for_actor(*, actor: Actor, index: int) -> LogEntry:
    return log.entry_get(
        organization_id=actor.organization.pk,
        index=index,
        member_user_ids=member_user_ids(organization=actor.organization),
    )
