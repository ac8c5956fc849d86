"""The response bodies of inference's resources (portal/platform/outputs.py says the convention).

The API views render these, and so does the compliance export that quotes them (one shape for both).
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from inference.services.training_datasets import budget_summary
from portal.jobs import JobStatus
from portal.platform.outputs import OutputSerializer, Receipt, has_result, status_is

_failed = status_is(JobStatus.FAILED)


class PredictionOutput(OutputSerializer):
    """A prediction: built from the typed result a worker answers with (`PredictionResult`)."""

    id = serializers.IntegerField()
    model = serializers.CharField()
    version = serializers.IntegerField()
    request_id = serializers.CharField(allow_blank=True)
    status = serializers.CharField()
    predictions = serializers.ListField(child=serializers.DictField(), help_text="per input: label and scores (a classifier), or embedding and tokens (an embedding model)")
    device = serializers.CharField(allow_blank=True)
    compute_ms = serializers.FloatField(allow_null=True)
    receipt = Receipt()
    language = serializers.JSONField(
        required=False, allow_null=True,
        help_text="null, or where an input's language is not one the model card lists: {supported, inputs: "
                  "[{input, detected}], message}; the inputs were still answered")


class WordValue(serializers.Serializer):  # type: ignore[type-arg]
    word = serializers.CharField()
    value = serializers.FloatField()


class ExplanationOutput(OutputSerializer):
    only_when = {name: has_result for name in (
        "method", "label", "labels", "evaluations", "base_values", "output", "residual", "features", "values",
        "words", "feature_values", "summary", "compute_ms", "device", "seed", "model_rows", "receipt")} | {
        "error": _failed}

    id = serializers.IntegerField()
    prediction = serializers.IntegerField(source="prediction_id")
    row = serializers.IntegerField(help_text="which input of the prediction")
    status = serializers.CharField()
    model = serializers.CharField(source="model_version.model.name")
    version = serializers.IntegerField(source="model_version.version")
    max_evals = serializers.IntegerField(help_text="the budget in model evaluations (coalitions)")
    url = serializers.SerializerMethodField()
    method = serializers.CharField(help_text="exact, permutation or partition (SHAP)")
    label = serializers.CharField(help_text="the explained label: the predicted one")  # type: ignore[assignment]  # the metaclass takes fields off the class
    labels = serializers.ListField(child=serializers.CharField(), source="result.labels")
    evaluations = serializers.IntegerField(help_text="coalitions evaluated")
    base_values = serializers.ListField(child=serializers.FloatField(), source="result.base_values")
    output = serializers.ListField(child=serializers.FloatField(), source="result.output")
    residual = serializers.FloatField(help_text="|base + sum of values - output|, worst label")
    features = serializers.ListField(child=serializers.CharField(), source="result.features",
                                     help_text="tokens or feature names")
    values = serializers.ListField(child=serializers.ListField(child=serializers.FloatField()), source="result.values",
                                   help_text="features x labels")
    words = WordValue(many=True, source="result.words", default=list, help_text="text: per word, for `label`")
    feature_values = serializers.ListField(child=serializers.JSONField(), source="result.feature_values", default=list,
                                           help_text="tabular: the input's values")
    summary = serializers.CharField(source="result.summary", default="")
    compute_ms = serializers.FloatField(allow_null=True)
    device = serializers.CharField(allow_blank=True)
    seed = serializers.IntegerField(source="result.seed", default=None, allow_null=True,
                                    help_text="the sampling seed: the same seed gives the same values")
    model_rows = serializers.IntegerField(source="result.model_rows", default=None, allow_null=True,
                                          help_text="rows the model ran")
    receipt = Receipt()
    error = serializers.CharField()

    @extend_schema_field(serializers.CharField())
    def get_url(self, explanation: Any) -> str:
        return reverse("api-explanation", args=[explanation.pk])


class RankedFeature(serializers.Serializer):  # type: ignore[type-arg]
    name = serializers.CharField()
    mean_abs = serializers.FloatField(help_text="mean |SHAP value| over the rows")
    mean_signed = serializers.FloatField()
    occurrences = serializers.IntegerField(help_text="rows where it appears")


class GlobalExplanationOutput(OutputSerializer):
    only_when = {name: has_result for name in (
        "device", "kind", "rows", "methods", "evaluations", "max_residual", "predicted", "distinct", "ranking")} | {
        "error": _failed}

    id = serializers.IntegerField()
    number = serializers.IntegerField(help_text="the version's n-th global explanation")
    model = serializers.CharField(source="model_version.model.name")
    version = serializers.IntegerField(source="model_version.version")
    status = serializers.CharField()
    source = serializers.CharField(help_text="upload, predictions or demo")  # type: ignore[assignment]  # as above
    dataset = serializers.CharField(source="dataset_name")
    dataset_sha256 = serializers.CharField()
    max_evals = serializers.IntegerField()
    rows_total = serializers.IntegerField()
    rows_done = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    url = serializers.SerializerMethodField()
    device = serializers.CharField(allow_blank=True)
    kind = serializers.CharField(source="result.kind", help_text="word or feature")
    rows = serializers.IntegerField(source="result.rows")
    methods = serializers.ListField(child=serializers.CharField(), source="result.methods")
    evaluations = serializers.IntegerField(source="result.evaluations")
    max_residual = serializers.FloatField(source="result.max_residual")
    predicted = serializers.DictField(child=serializers.IntegerField(), source="result.predicted",
                                      help_text="rows per predicted label")
    distinct = serializers.IntegerField(source="result.distinct", help_text="distinct words or features seen")
    ranking = RankedFeature(many=True, source="result.ranking")
    error = serializers.CharField()

    @extend_schema_field(serializers.CharField())
    def get_url(self, job: Any) -> str:
        return reverse("api-global-explanation", args=[job.pk])


class PlanOutput(serializers.Serializer):  # type: ignore[type-arg]
    """What a private fine-tuning run spends, fixed before it starts (inference/ml/dp_accounting.Plan). A plan
    stored before a field existed lacks it, and is shown without it."""

    target_epsilon = serializers.FloatField(required=False)
    target_delta = serializers.FloatField(required=False)
    epochs = serializers.IntegerField(required=False)
    batch_size = serializers.IntegerField(required=False)
    learning_rate = serializers.FloatField(required=False)
    max_grad_norm = serializers.FloatField(required=False)
    rows = serializers.IntegerField(help_text="training rows", required=False)
    sample_rate = serializers.FloatField(required=False)
    steps = serializers.IntegerField(required=False)
    noise_multiplier = serializers.FloatField(required=False)
    accountant = serializers.CharField(required=False)
    lr_schedule = serializers.CharField(default="constant")


class FineTuneResult(serializers.Serializer):  # type: ignore[type-arg]
    accuracy = serializers.FloatField(help_text="on the dataset's held-out rows", required=False)
    base_accuracy = serializers.FloatField(help_text="the base version's, on the same rows", required=False)
    perplexity = serializers.FloatField(help_text="generative: on the dataset's held-out records", required=False)
    base_perplexity = serializers.FloatField(help_text="generative: the base version's, on the same records",
                                             required=False)
    seconds = serializers.FloatField(required=False)
    final_loss = serializers.FloatField(allow_null=True, required=False)


class FineTuneJobOutput(OutputSerializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    model = serializers.CharField(source="base_version.model.name")
    base_version = serializers.IntegerField(source="base_version.version")
    dataset = serializers.IntegerField(source="dataset_id")
    plan = PlanOutput()
    adapter = serializers.JSONField(help_text="generative bases: the LoRA adapters trained (method, rank, alpha, "
                                    "targets); empty for a classifier")
    steps_done = serializers.IntegerField()
    steps_total = serializers.IntegerField(source="plan.steps")
    epoch = serializers.IntegerField()
    loss = serializers.FloatField(allow_null=True)
    epsilon_spent = serializers.FloatField(allow_null=True)
    cancel_requested = serializers.BooleanField()
    result = FineTuneResult(allow_null=True)
    error = serializers.CharField(allow_blank=True)
    device = serializers.CharField(allow_blank=True)
    result_version = serializers.IntegerField(source="result_version.version", allow_null=True)
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


class CanaryAuditOutput(OutputSerializer):
    """A canary audit: progress, then the exposures (inference/ml/canaries.py)."""

    id = serializers.IntegerField()
    status = serializers.CharField()
    stage = serializers.CharField(allow_blank=True)
    model = serializers.CharField(source="version.model.name")
    version = serializers.IntegerField(source="version.version")
    finetune = serializers.IntegerField(source="finetune_id", help_text="the fine-tuning run repeated")
    dataset = serializers.IntegerField(source="dataset_id")
    params = serializers.JSONField(help_text="format, digits, canaries, insertions (each canary's copies), "
                                   "references (secrets never inserted, to rank against), compare (a non-private run)")
    plan = PlanOutput(help_text="the private run: the fine-tune's noise, batch, steps and clipping, on the rows with "
                      "canaries")
    steps_done = serializers.IntegerField()
    steps_total = serializers.IntegerField()
    epsilon_spent = serializers.FloatField()
    cancel_requested = serializers.BooleanField()
    result = serializers.JSONField(allow_null=True, help_text="once done: base, private and non_private (each "
                                   "canary's exposure in bits, their mean and max, counted and extrapolated), bound "
                                   "(the largest mean exposure the private run's epsilon allows), within_bound")
    summary = serializers.SerializerMethodField()
    error = serializers.CharField(allow_blank=True)
    created_by = serializers.CharField(source="created_by.username")
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)

    def get_summary(self, audit: Any) -> str:
        from inference.services.canary_audits import summary

        return summary(audit.result) if audit.status == "done" and audit.result else ""


class BudgetOutput(serializers.Serializer):  # type: ignore[type-arg]
    epsilon_cap = serializers.FloatField()
    delta = serializers.FloatField()
    accountant = serializers.CharField()
    epsilon_spent = serializers.FloatField(help_text="composed over settled runs")
    epsilon_committed = serializers.FloatField(help_text="settled and reserved runs")
    runs = serializers.IntegerField()
    reserved_runs = serializers.IntegerField()


class LedgerEntryOutput(serializers.Serializer):  # type: ignore[type-arg]
    job = serializers.IntegerField(source="job_id", allow_null=True, help_text="the fine-tuning job that spends")
    audit = serializers.IntegerField(source="audit_id", allow_null=True,
                                     help_text="or the canary audit whose private run spends")
    state = serializers.CharField(help_text="reserved or settled")
    noise_multiplier = serializers.FloatField()
    sample_rate = serializers.FloatField()
    steps_reserved = serializers.IntegerField()
    steps_spent = serializers.IntegerField(allow_null=True)
    epsilon_planned = serializers.FloatField()
    created_at = serializers.DateTimeField()
    settled_at = serializers.DateTimeField(allow_null=True)


class TrainingDatasetOutput(OutputSerializer):
    """A training dataset: its budget and ledger, never its rows."""

    id = serializers.IntegerField()
    model = serializers.CharField(source="model.name")
    name = serializers.CharField()
    sha256 = serializers.CharField()
    train_rows = serializers.IntegerField()
    holdout_rows = serializers.IntegerField()
    epsilon_cap = serializers.FloatField()
    delta_cap = serializers.FloatField()
    created_by = serializers.CharField(source="created_by.username")
    created_at = serializers.DateTimeField()
    budget = serializers.SerializerMethodField()
    ledger = LedgerEntryOutput(many=True, source="ledger.all")

    @extend_schema_field(BudgetOutput)
    def get_budget(self, dataset: Any) -> dict[str, Any]:
        return budget_summary(dataset)



class CompletionChoice(serializers.Serializer):  # type: ignore[type-arg]
    index = serializers.IntegerField()
    text = serializers.CharField(allow_blank=True, help_text="redacted")
    finish_reason = serializers.CharField()


class CompletionOutput(OutputSerializer):
    """A stored completion: its redacted prompt and answer, token counts and receipt (never the raw text)."""

    only_when = {"error": _failed}

    id = serializers.IntegerField()
    model = serializers.CharField(source="model_version.model.name")
    version = serializers.IntegerField(source="model_version.version")
    kind = serializers.CharField(help_text="chat or text")
    status = serializers.CharField()
    stream = serializers.BooleanField()
    parameters = serializers.DictField(help_text="max_tokens, temperature, top_p, n, stop, seed, ... (redacted)")
    prompt = serializers.JSONField(allow_null=True, help_text="redacted: the messages, or the prompt")
    choices = CompletionChoice(many=True, allow_null=True)
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    system_fingerprint = serializers.CharField(allow_blank=True)
    device = serializers.CharField(allow_blank=True)
    compute_ms = serializers.FloatField(allow_null=True)
    first_token_ms = serializers.FloatField(allow_null=True)
    requested_by = serializers.CharField(source="created_by.username")
    token = serializers.IntegerField(source="token_id", allow_null=True)
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    guard = serializers.JSONField(help_text="the guardrail policy applied (revision) and its decisions; {} without one")
    guard_outcome = serializers.CharField(allow_blank=True, help_text="'', flagged, blocked or filtered")
    receipt = Receipt()
    error = serializers.CharField()


class CompletionExplanationOutput(OutputSerializer):
    """Attributions of a span of a completion's answer to the words of the caller's message."""

    only_when = {name: has_result for name in (
        "method", "evaluations", "base_value", "output", "residual", "tokens", "values", "words", "span_text",
        "prompt_as_seen", "seed", "compute_ms", "device", "receipt")} | {"error": _failed}

    id = serializers.IntegerField()
    completion = serializers.IntegerField(source="completion_id")
    choice = serializers.IntegerField()
    span = serializers.SerializerMethodField(help_text="characters [start, end) of the answer explained")
    status = serializers.CharField()
    max_evals = serializers.IntegerField(help_text="the budget in model evaluations (coalitions)")
    progress = serializers.SerializerMethodField(help_text="model evaluations done and allowed")
    url = serializers.SerializerMethodField()
    method = serializers.CharField(help_text="exact (every coalition) or partition (SHAP's Owen values)")
    evaluations = serializers.IntegerField(help_text="coalitions the model scored")
    quantity = serializers.CharField(source="result.quantity", default="")
    span_text = serializers.CharField(source="result.span_text")
    base_value = serializers.SerializerMethodField(help_text="the span's log-probability, the whole message masked")
    output = serializers.SerializerMethodField(help_text="its log-probability given the message")
    residual = serializers.FloatField(help_text="|base + sum of values - output|")
    tokens = serializers.ListField(child=serializers.CharField(), source="result.features")
    values = serializers.SerializerMethodField(help_text="per token of the message")
    words = WordValue(many=True, source="result.words", default=list, help_text="per word of the message")
    prompt_as_seen = serializers.BooleanField(source="result.prompt_as_seen", default=None, allow_null=True,
                                              help_text="the stored (redacted) prompt has the tokens the model saw")
    seed = serializers.IntegerField(source="result.seed", default=None, allow_null=True)
    compute_ms = serializers.FloatField(allow_null=True)
    device = serializers.CharField(allow_blank=True)
    receipt = Receipt()
    error = serializers.CharField()

    @extend_schema_field(serializers.ListField(child=serializers.IntegerField()))
    def get_span(self, job: Any) -> list[int]:
        return [job.span_start, job.span_end]

    @extend_schema_field(serializers.DictField(child=serializers.IntegerField()))
    def get_progress(self, job: Any) -> dict[str, int]:
        return {"rows_done": job.rows_done, "rows_total": job.rows_total}

    @extend_schema_field(serializers.FloatField())
    def get_base_value(self, job: Any) -> float:
        return float(job.result["base_values"][0])

    @extend_schema_field(serializers.FloatField())
    def get_output(self, job: Any) -> float:
        return float(job.result["output"][0])

    @extend_schema_field(serializers.ListField(child=serializers.FloatField()))
    def get_values(self, job: Any) -> list[float]:
        return [row[0] for row in (job.result or {}).get("values", [])]

    @extend_schema_field(serializers.CharField())
    def get_url(self, job: Any) -> str:
        return reverse("api-completion-explanation", args=[job.pk])
