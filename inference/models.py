from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from portal.accounts.models import ApiToken, Organization
from portal.jobs import Job, JobStatus, WorkerJob


class Task(models.TextChoices):
    TEXT = "text-classification"
    TABULAR = "tabular-classification"
    GENERATION = "text-generation"
    EMBEDDING = "text-embedding"


class VersionStatus(models.TextChoices):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"
    RETIRED = "retired"


class RegisteredModel(models.Model):
    """A named model of an organisation; what it does changes only through its versions."""

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="models")
    name = models.SlugField(max_length=60)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="model_name_unique")]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ModelVersion(models.Model):
    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    task = models.CharField(max_length=32, choices=Task.choices)
    framework = models.CharField(max_length=32)
    labels = models.JSONField(default=list)
    input_schema = models.JSONField(default=dict, blank=True)
    artifact = models.CharField(max_length=300, help_text="path in the artifact storage")
    artifact_sha256 = models.CharField(max_length=64)
    artifact_size = models.BigIntegerField()
    card = models.JSONField(default=dict, help_text="the model card")
    metrics = models.JSONField(default=dict, blank=True)
    background_rows = models.PositiveIntegerField(
        default=0, help_text="tabular: rows of training data in the artifact (background.jsonl) for explanations"
    )
    privacy = models.JSONField(default=dict, blank=True, help_text="the DP guarantee of a privately fine-tuned version")
    status = models.CharField(max_length=16, choices=VersionStatus.choices, default=VersionStatus.DRAFT)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "version"], name="model_version_unique")]
        ordering = ["model__name", "-version"]

    def __str__(self) -> str:
        return f"{self.model.name}@{self.version}"

    @property
    def organization_id(self) -> int:
        return self.model.organization_id

    @property
    def is_servable(self) -> bool:
        return self.status == VersionStatus.APPROVED


class ModelTransition(models.Model):
    """One step of a version's lifecycle: who moved it, when and why."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="transitions")
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]


class ModelAlias(models.Model):
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="aliases")
    name = models.SlugField(max_length=30)
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="aliases")
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "name"], name="alias_unique")]


class Prediction(models.Model):
    """One prediction request (one or more input rows) and its outputs.

    The raw inputs are kept here, in the tenant's own table (erasable), so that the prediction
    can be explained later; the audit log holds only their salted commitment and redacted form.
    """

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="predictions")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    token = models.ForeignKey(ApiToken, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    request_id = models.CharField(max_length=64, blank=True)
    inputs = models.JSONField()
    outputs = models.JSONField(null=True, blank=True)
    rows = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.PENDING)
    error = models.TextField(blank=True)
    device = models.CharField(max_length=60, blank=True)
    compute_ms = models.FloatField(null=True, blank=True)
    energy_wh = models.FloatField(null=True, blank=True, help_text="power x compute time (inference/ml/energy.py)")
    energy_estimated = models.BooleanField(default=True, help_text="False: the power was measured (RAPL, NVML)")
    audit_index = models.BigIntegerField(null=True, blank=True)
    audit_leaf_hash = models.CharField(max_length=64, blank=True)
    unsupported_language = models.CharField(
        max_length=8, blank=True, help_text="the language (ISO 639) of its first input in one the card does not list")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["organization", "-created_at"])]


class BatchJob(WorkerJob):
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="jobs")
    token = models.ForeignKey(ApiToken, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    input_name = models.CharField(max_length=200)
    input_path = models.CharField(max_length=300)
    input_format = models.CharField(max_length=8)  # csv | jsonl
    result_path = models.CharField(max_length=300, blank=True)
    rows_total = models.PositiveIntegerField()
    rows_done = models.PositiveIntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at"]


class UsageDaily(models.Model):
    """Metering per organisation, token (null: the organisation's total) and UTC day."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    token = models.ForeignKey(ApiToken, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    day = models.DateField()
    requests = models.PositiveIntegerField(default=0)
    rows = models.PositiveIntegerField(default=0)
    compute_ms = models.FloatField(default=0)
    # generative models: tokens reserved or spent today (the quota's counter, on the organisation's row),
    # and the prompt and completion tokens served
    tokens = models.PositiveBigIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    # the energy of the day's served work (Wh; the part estimated, not measured) and its carbon (g CO2e)
    energy_wh = models.FloatField(default=0)
    energy_estimated_wh = models.FloatField(default=0)
    carbon_g = models.FloatField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "token", "day"], name="usage_token_day"),
            models.UniqueConstraint(
                fields=["organization", "day"], condition=Q(token__isnull=True), name="usage_org_day"
            ),
        ]


class Explanation(Job):
    """SHAP attributions for one row of a stored prediction, with what is needed to check them."""

    prediction = models.ForeignKey(Prediction, on_delete=models.CASCADE, related_name="explanations")
    row = models.PositiveIntegerField(default=0)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="explanations")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    token = models.ForeignKey(ApiToken, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    max_evals = models.PositiveIntegerField()
    method = models.CharField(max_length=32, blank=True)  # exact | partition | permutation
    label = models.CharField(max_length=200, blank=True)  # the explained (predicted) label
    result = models.JSONField(null=True, blank=True)  # features, values, base values, output, words
    residual = models.FloatField(null=True, blank=True)
    evaluations = models.PositiveIntegerField(default=0)
    compute_ms = models.FloatField(null=True, blank=True)
    device = models.CharField(max_length=60, blank=True)
    audit_index = models.BigIntegerField(null=True, blank=True)
    audit_leaf_hash = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-created_at"]


class GlobalSource(models.TextChoices):
    UPLOAD = "upload"  # an evaluation file (CSV or JSON lines, as for batch jobs)
    PREDICTIONS = "predictions"  # the latest rows this version served (inputs not erased)
    DEMO = "demo"  # the shipped evaluation set of a demo model (SST-2 dev, Adult test)


class GlobalExplanation(WorkerJob):
    """Mean |SHAP| per feature (tabular) or per word (text) over an evaluation sample; numbered per version."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="global_explanations")
    number = models.PositiveIntegerField()
    source = models.CharField(max_length=16, choices=GlobalSource.choices)
    dataset_name = models.CharField(max_length=200)
    dataset_sha256 = models.CharField(max_length=64)
    dataset_path = models.CharField(max_length=300)
    max_evals = models.PositiveIntegerField()
    rows_total = models.PositiveIntegerField()
    rows_done = models.PositiveIntegerField(default=0)
    result = models.JSONField(null=True, blank=True)  # method, ranking, residual, evaluations
    device = models.CharField(max_length=60, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["model_version", "number"], name="global_explanation_number_unique")
        ]

    def __str__(self) -> str:
        return f"global explanation {self.number} of {self.model_version}"


class Evaluation(WorkerJob):
    """A version's metrics measured on a held-out file the owner uploaded; when done, they are the
    version's `metrics["evaluation"]`, with the file's hash."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="evaluations")
    dataset_name = models.CharField(max_length=200)
    dataset_sha256 = models.CharField(max_length=64)
    dataset_path = models.CharField(max_length=300)
    rows_total = models.PositiveIntegerField()
    rows_done = models.PositiveIntegerField(default=0)
    result = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]


class TrainingDataset(models.Model):
    """Records an organisation may fine-tune on, under a privacy budget its data owner set.

    The rows are stored (artifact storage) but never shown back nor logged; a fixed, seeded tenth is
    held out of every run to measure accuracy.
    """

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="training_datasets")
    name = models.CharField(max_length=200)
    path = models.CharField(max_length=300)
    sha256 = models.CharField(max_length=64)
    train_rows = models.PositiveIntegerField()
    holdout_rows = models.PositiveIntegerField()
    epsilon_cap = models.FloatField()
    delta_cap = models.FloatField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"dataset {self.name}"


class FineTuneJob(WorkerJob):
    """A DP-SGD fine-tuning run of a base version on a dataset; its result is a new draft version."""

    dataset = models.ForeignKey(TrainingDataset, on_delete=models.PROTECT, related_name="jobs")
    base_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    result_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, null=True, blank=True,
                                       related_name="+")
    plan = models.JSONField()  # inference.ml.dp_accounting.Plan: targets, hyper-parameters, noise, sample rate, steps
    # a generative base: the adapters trained (inference.ml.private_lm: method, rank, alpha, targets); empty for a classifier
    adapter = models.JSONField(default=dict, blank=True)
    steps_done = models.PositiveIntegerField(default=0)
    epoch = models.PositiveIntegerField(default=0)
    loss = models.FloatField(null=True, blank=True)
    epsilon_spent = models.FloatField(default=0.0)
    checkpoint_path = models.CharField(max_length=300, blank=True)
    cancel_requested = models.BooleanField(default=False)
    result = models.JSONField(null=True, blank=True)  # accuracies, seconds, device
    device = models.CharField(max_length=60, blank=True)

    class Meta:
        ordering = ["-created_at"]


class LedgerState(models.TextChoices):
    RESERVED = "reserved"  # a job that may still spend up to its plan
    SETTLED = "settled"  # what the job spent, for good; the rest of its reservation released


class PrivacyLedgerEntry(models.Model):
    """One run's claim on a dataset's budget: (noise multiplier, sample rate, steps), composed under RDP."""

    dataset = models.ForeignKey(TrainingDataset, on_delete=models.PROTECT, related_name="ledger")
    # the run that spends: a fine-tuning job, or the private run of a canary audit (exactly one of them)
    job = models.OneToOneField(FineTuneJob, on_delete=models.PROTECT, related_name="ledger_entry", null=True,
                               blank=True)
    audit = models.OneToOneField("CanaryAudit", on_delete=models.PROTECT, related_name="ledger_entry", null=True,
                                 blank=True)
    state = models.CharField(max_length=16, choices=LedgerState.choices, default=LedgerState.RESERVED)
    noise_multiplier = models.FloatField()
    sample_rate = models.FloatField()
    steps_reserved = models.PositiveIntegerField()
    steps_spent = models.PositiveIntegerField(default=0)
    epsilon_planned = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [models.CheckConstraint(
            condition=Q(job__isnull=False, audit__isnull=True) | Q(job__isnull=True, audit__isnull=False),
            name="ledger_entry_one_run")]

    @property
    def steps_counted(self) -> int:
        """Steps held against the budget: the whole plan while reserved, what was spent once settled."""
        return self.steps_reserved if self.state == LedgerState.RESERVED else self.steps_spent


class ModelUpload(WorkerJob):
    """An uploaded archive waiting for its check on a worker (inference/ml/sandbox.py).

    The archive waits in the artifact storage under `staged_path`; a check that passes makes it
    a draft version (`version`), one that fails deletes it and keeps only the reason (`error`), so
    that nothing of a refused upload stays behind.
    """

    name = models.SlugField(max_length=60)
    task = models.CharField(max_length=32, choices=Task.choices)
    card = models.JSONField(default=dict)
    description = models.TextField(blank=True)
    staged_path = models.CharField(max_length=300, blank=True)
    archive_sha256 = models.CharField(max_length=64)
    archive_size = models.BigIntegerField()
    version = models.ForeignKey(ModelVersion, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    audit_actor = models.JSONField(default=dict, help_text="who uploaded it, as the audit log names them")

    class Meta:
        ordering = ["-created_at"]


class CompletionKind(models.TextChoices):
    CHAT = "chat"
    TEXT = "text"


class Completion(WorkerJob):
    """One request to a generative model (/v1/chat/completions or /v1/completions) and its answer.

    Only redacted copies of the prompt and the answer are kept (the organisation's redaction rules);
    the audit log commits to the raw ones, and the caller's receipt holds the salt that opens the
    commitment. The raw prompt travels to the worker in the task's message and is stored nowhere.
    """

    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="completions")
    token = models.ForeignKey(ApiToken, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    request_id = models.CharField(max_length=64, blank=True)
    kind = models.CharField(max_length=8, choices=CompletionKind.choices)
    stream = models.BooleanField(default=False)
    parameters = models.JSONField(default=dict, help_text="what changes the output: max_tokens, temperature, ...")
    prompt = models.JSONField(null=True, blank=True, help_text="redacted: the messages or the prompt")
    choices = models.JSONField(null=True, blank=True, help_text="redacted: [{index, text, finish_reason}]")
    tokens_reserved = models.PositiveBigIntegerField(default=0)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    system_fingerprint = models.CharField(max_length=40, blank=True)
    device = models.CharField(max_length=60, blank=True)
    compute_ms = models.FloatField(null=True, blank=True)
    first_token_ms = models.FloatField(null=True, blank=True)
    energy_wh = models.FloatField(null=True, blank=True, help_text="power x compute time (inference/ml/energy.py)")
    energy_estimated = models.BooleanField(default=True, help_text="False: the power was measured (RAPL, NVML)")
    audit_index = models.BigIntegerField(null=True, blank=True)
    audit_leaf_hash = models.CharField(max_length=64, blank=True)
    guard = models.JSONField(default=dict, blank=True,
                             help_text="the guardrail policy applied (its revision) and each of its decisions")
    guard_outcome = models.CharField(max_length=16, blank=True,
                                     help_text="'' (passed), flagged, blocked (the prompt) or filtered (the output)")
    unsupported_language = models.CharField(
        max_length=8, blank=True, help_text="the prompt's language (ISO 639) where the card does not list it")

    class Meta:
        indexes = [models.Index(fields=["organization", "-created_at"]),
                   models.Index(fields=["model_version", "-created_at"])]


class GuardAction(models.TextChoices):
    OFF = "off"
    FLAG = "flag"  # served, and marked for review
    BLOCK = "block"  # refused (a prompt) or stopped (an output)


class GuardrailPolicy(models.Model):
    """What an organisation checks around its generative models: one policy for the organisation
    (model = None) and, where a model needs its own, one for that model, which then replaces the
    organisation's (it does not merge with it). Changes are audited; each completion records the
    revision it ran under."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="guardrail_policies")
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, null=True, blank=True,
                              related_name="guardrail_policies")
    mask_pii = models.BooleanField(default=False, help_text="the redaction rules applied to the prompt before the model")
    moderation_model = models.CharField(max_length=200, default="moderation",
                                        help_text="the moderation model (name, name@alias or name@version)")
    categories = models.JSONField(default=list, blank=True,
                                  help_text="the moderation categories checked; empty: all the model scores")
    input_action = models.CharField(max_length=8, choices=GuardAction.choices, default=GuardAction.OFF)
    input_threshold = models.FloatField(default=0.5)
    output_action = models.CharField(max_length=8, choices=GuardAction.choices, default=GuardAction.OFF)
    output_threshold = models.FloatField(default=0.5)
    blocked_patterns = models.JSONField(default=list, blank=True,
                                        help_text="RE2 patterns refused in prompts and stopped in outputs")
    max_output_tokens = models.PositiveIntegerField(null=True, blank=True)
    revision = models.PositiveIntegerField(default=1)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization"], condition=Q(model__isnull=True),
                                    name="one_guardrail_policy_per_organization"),
            models.UniqueConstraint(fields=["organization", "model"], condition=Q(model__isnull=False),
                                    name="one_guardrail_policy_per_model"),
        ]


class CompletionExplanation(WorkerJob):
    """SHAP attributions of a span of a stored completion's answer to the words of the caller's message."""

    completion = models.ForeignKey(Completion, on_delete=models.CASCADE, related_name="explanations")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    token = models.ForeignKey(ApiToken, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    choice = models.PositiveSmallIntegerField(default=0)
    span_start = models.PositiveIntegerField(help_text="the span of the answer explained: characters [start, end)")
    span_end = models.PositiveIntegerField()
    max_evals = models.PositiveIntegerField()
    rows_total = models.PositiveIntegerField(default=0, help_text="the model evaluations the budget allows")
    rows_done = models.PositiveIntegerField(default=0)
    method = models.CharField(max_length=32, blank=True)  # exact | partition
    result = models.JSONField(null=True, blank=True, help_text="tokens, values, words, base value, output, seed")
    residual = models.FloatField(null=True, blank=True)
    evaluations = models.PositiveIntegerField(default=0)
    compute_ms = models.FloatField(null=True, blank=True)
    device = models.CharField(max_length=60, blank=True)
    audit_index = models.BigIntegerField(null=True, blank=True)
    audit_leaf_hash = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-created_at"]


class CompressionPolicy(models.Model):
    """The largest quality loss an organisation accepts of a compressed version; beyond it the
    version cannot be approved (inference/services/compressions.compression_evidence). Changes are audited."""

    organization = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="compression_policy")
    max_accuracy_drop = models.FloatField(default=1.0, help_text="classifiers: percentage points of held-out accuracy")
    max_disparity_change = models.FloatField(
        default=0.05, help_text="classifiers: the largest change of any disparity of the source's latest bias report")
    max_perplexity_ratio = models.FloatField(default=1.25, help_text="generative: compressed / source perplexity")
    min_greedy_agreement = models.FloatField(
        default=0.85, help_text="generative: share of the source's greedy tokens the compressed model predicts alike")
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)


class Compression(WorkerJob):
    """A compression of a version (int8 and its measured loss on held-out data); the result is a new
    draft version linked to its source, with what was measured in its `metrics["compression"]`."""

    source_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="compressions")
    method = models.CharField(max_length=32)
    keep_float = models.JSONField(default=list, blank=True)
    dataset_name = models.CharField(max_length=200)
    dataset_sha256 = models.CharField(max_length=64)
    dataset_path = models.CharField(max_length=300)
    rows_total = models.PositiveIntegerField()
    rows_done = models.PositiveIntegerField(default=0)
    stage = models.CharField(max_length=32, blank=True, default="")
    result = models.JSONField(null=True, blank=True)
    result_version = models.OneToOneField(ModelVersion, on_delete=models.PROTECT, null=True, blank=True,
                                          related_name="compressed_from")

    class Meta:
        ordering = ["-created_at"]


class CanaryAudit(WorkerJob):
    """An empirical privacy audit of a privately fine-tuned generative version (inference/ml/canaries.py).

    Its fine-tuning is repeated on a copy of the training data with secret canaries inserted: the
    private run (the same noise, batch, steps and clipping; charged to the dataset's ledger like any
    run, checkpointed) and, when asked, the same run without privacy. Each trained model is then
    asked how likely every canary is against `references` secrets of the same format never inserted:
    the exposure. The trained weights never leave the worker; the canaries are made-up secrets,
    drawn when the audit is asked for, so a resumed run inserts the same ones."""

    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="canary_audits")
    finetune = models.ForeignKey(FineTuneJob, on_delete=models.PROTECT, related_name="canary_audits")
    dataset = models.ForeignKey(TrainingDataset, on_delete=models.PROTECT, related_name="canary_audits")
    # format, digits, canaries (how many), insertions, references, compare (the non-private run)
    params = models.JSONField()
    drawn = models.JSONField()  # {"canaries": [...], "references": [...]}: made-up, never anyone's data
    plan = models.JSONField()  # the private run's dp_accounting.Plan (the fine-tune's, on the rows with canaries)
    stage = models.CharField(max_length=40, blank=True, default="")
    steps_done = models.PositiveIntegerField(default=0)
    steps_total = models.PositiveIntegerField(default=0)
    epoch = models.PositiveIntegerField(default=0)
    loss = models.FloatField(null=True, blank=True)
    epsilon_spent = models.FloatField(default=0.0)
    checkpoint_path = models.CharField(max_length=300, blank=True)
    cancel_requested = models.BooleanField(default=False)
    result = models.JSONField(null=True, blank=True)  # {"private": {...}, "non_private": {...}, "bound": ...}

    class Meta:
        ordering = ["-created_at"]
