"""On PostgreSQL, the database itself refuses to change or remove what the log holds.

Only erasure may touch an entry, and only to blank its stored payload and salt once; the
commitment and every hash stay, so the chain still verifies.

TRUNCATE is left to privileges (the portal's database role should not own the tables in
production), since test databases are flushed with it; the verifier detects a truncation anyway.
"""

from django.db import migrations

FORBID = """
CREATE OR REPLACE FUNCTION audit_log_forbid_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit log table % is append-only (% refused)', TG_TABLE_NAME, TG_OP;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION audit_log_entry_guard() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'audit log entries cannot be deleted';
    END IF;
    IF NEW.index IS DISTINCT FROM OLD.index
       OR NEW.created_at IS DISTINCT FROM OLD.created_at
       OR NEW.organization_id IS DISTINCT FROM OLD.organization_id
       OR NEW.actor_type IS DISTINCT FROM OLD.actor_type
       OR NEW.actor_id IS DISTINCT FROM OLD.actor_id
       OR NEW.actor_label IS DISTINCT FROM OLD.actor_label
       OR NEW.action IS DISTINCT FROM OLD.action
       OR NEW.target_type IS DISTINCT FROM OLD.target_type
       OR NEW.target_id IS DISTINCT FROM OLD.target_id
       OR NEW.request_id IS DISTINCT FROM OLD.request_id
       OR NEW.payload_sha256 IS DISTINCT FROM OLD.payload_sha256
       OR NEW.commitment IS DISTINCT FROM OLD.commitment
       OR NEW.subject_key IS DISTINCT FROM OLD.subject_key
       OR NEW.leaf_hash IS DISTINCT FROM OLD.leaf_hash THEN
        RAISE EXCEPTION 'audit log entries are append-only; only erasure may blank a payload';
    END IF;
    IF OLD.erased_at IS NOT NULL OR NEW.erased_at IS NULL
       OR NEW.payload IS NOT NULL OR NEW.salt <> '' THEN
        RAISE EXCEPTION 'an audit entry may only be erased once, blanking payload and salt';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_log_entry_guard BEFORE UPDATE OR DELETE ON audit_log_logentry
    FOR EACH ROW EXECUTE FUNCTION audit_log_entry_guard();
CREATE TRIGGER audit_log_node_guard BEFORE UPDATE OR DELETE ON audit_log_merklenode
    FOR EACH ROW EXECUTE FUNCTION audit_log_forbid_change();
CREATE TRIGGER audit_log_checkpoint_guard BEFORE UPDATE OR DELETE ON audit_log_checkpoint
    FOR EACH ROW EXECUTE FUNCTION audit_log_forbid_change();
"""

UNDO = """
DROP TRIGGER IF EXISTS audit_log_entry_guard ON audit_log_logentry;
DROP TRIGGER IF EXISTS audit_log_node_guard ON audit_log_merklenode;
DROP TRIGGER IF EXISTS audit_log_checkpoint_guard ON audit_log_checkpoint;
DROP FUNCTION IF EXISTS audit_log_entry_guard();
DROP FUNCTION IF EXISTS audit_log_forbid_change();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORBID, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(UNDO, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit_log", "0001_initial")]
    operations = [migrations.RunPython(forward, backward)]
