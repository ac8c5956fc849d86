from django.apps import AppConfig


class FairnessConfig(AppConfig):
    name = "audit.fairness"
    label = "fairness"
    verbose_name = "Bias reports"

    def ready(self) -> None:
        from audit.fairness.compression import compression_bias_evidence, on_version_compressed
        from audit.fairness.services import bias_evidence
        from inference.evidence import register_evidence_provider
        from inference.services.compressions import version_compressed

        register_evidence_provider("bias_report", bias_evidence)
        register_evidence_provider("compression_bias", compression_bias_evidence)
        version_compressed.connect(on_version_compressed, dispatch_uid="fairness-repeat-on-compression")
