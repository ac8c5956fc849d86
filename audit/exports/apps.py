from django.apps import AppConfig


class ExportsConfig(AppConfig):
    name = "audit.exports"
    label = "exports"
    verbose_name = "Compliance exports"

    def ready(self) -> None:
        from audit.exports.services import export_evidence
        from inference.evidence import register_evidence_provider

        register_evidence_provider("compliance_export", export_evidence)
