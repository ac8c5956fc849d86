from __future__ import annotations

from audit.log.services import AuditActor, audit_record, checkpoint_create

ACTOR = AuditActor(type="user", id="1", label="alice")


def build_log(n: int, *, org_of=lambda i: 1 if i % 3 else 2, checkpoint_every: int = 7) -> None:
    """n entries over two organisations, with a signed checkpoint every few entries and at the end."""
    for i in range(n):
        audit_record(
            action="thing.happened", actor=ACTOR, organization_id=org_of(i),
            target_type="t.T", target_id=i, payload={"i": i, "note": f"entry {i}"},
            subject=f"subject-{i % 4}",
        )
        if (i + 1) % checkpoint_every == 0:
            checkpoint_create()
    checkpoint_create()
