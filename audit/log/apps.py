from django.apps import AppConfig


class AuditLogConfig(AppConfig):
    name = "audit.log"
    label = "audit_log"
    verbose_name = "Audit log"
