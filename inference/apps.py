from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "inference"
    label = "inference"
    verbose_name = "Models and serving"

    def ready(self) -> None:
        # each of these registers its kind of job (portal/jobs.py)
        from inference.evidence import register_evidence_provider
        from inference.services import (  # noqa: F401
            canary_audits,
            completion_explanations,
            completions,
            compressions,
            evaluations,
            explanations,
            finetuning,
            jobs,
            uploads,
        )
        from inference.services.global_explanations import explanation_evidence

        register_evidence_provider("global_explanation", explanation_evidence)
