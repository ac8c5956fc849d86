from django.apps import AppConfig


class FairnessConfig(AppConfig):
    name = "audit.fairness"
    label = "fairness"
    verbose_name = "Bias reports"

    def ready(self) -> None:
        from audit.fairness.services import bias_evidence
        from inference.evidence import register_evidence_provider

        register_evidence_provider("bias_report", bias_evidence)
