"""Compression of a version with measured loss: a job on the workers (inference/ml/compression.py)
whose result is a new draft version linked to its source. What it cost in quality is measured on
held-out data against the source, on the same worker, and stored on the new version
(`metrics["compression"]`); the organisation's policy says how much loss it accepts, and a
compressed version beyond it cannot be approved (`compression_evidence`).

Classifiers are measured on labelled held-out rows (the source's latest evaluation, or a file),
generative models on held-out texts (the demo sentences, or a file of one text per line).
"""

from __future__ import annotations

import io
import json
import re
import shutil
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.dispatch import Signal
from django.urls import reverse
from django.utils.translation import gettext

from audit.log.services import AuditActor, audit_record
from inference.evidence import Evidence, register_evidence_provider
from inference.exceptions import InvalidCompressionPolicy, InvalidInput, NotCompressible, WorkerUnavailable
from inference.ml import compression
from inference.ml.loading import BUILDING
from inference.models import Compression, CompressionPolicy, Evaluation, JobStatus, ModelVersion, Task
from inference.services.evaluations import evaluation_parse
from inference.services.jobs import upload_text
from portal.accounts.actor import Actor, actor_for_membership
from portal.accounts.models import Organization
from portal.accounts.roles import Cap
from portal.jobs import JobKind, job_beat, job_claim, job_finish, register, stored_input
from portal.platform.locks import for_update
from portal.platform.workers import generation_queue, serving_queue

WORKER = AuditActor.system("inference worker")
DATA = Path(__file__).resolve().parents[2] / "data"
DEMO_HELDOUT = DATA / "uci_sentences" / "heldout.txt"  # the demo assistant's held-out sentences
DATASETS: dict[str, tuple[str, str]] = {
    Task.TEXT.value: ("evaluation", "upload"),
    Task.GENERATION.value: ("demo-heldout", "upload"),
}
MIN_ROWS = 10
_PATTERN = re.compile(r"^[A-Za-z0-9_.]{1,100}$")
POLICY_LIMITS = {
    "max_accuracy_drop": (0.0, 100.0),
    "max_disparity_change": (0.0, 1.0),
    "max_perplexity_ratio": (1.0, 100.0),
    "min_greedy_agreement": (0.0, 1.0),
}

# sent once a compressed version is registered (governance repeats the source's bias reports on it)
version_compressed = Signal()  # sender=Compression, compression=..., version=..., actor=...


# ---------------------------------------------------------------- the policy

def compression_policy_for(organization: Organization) -> CompressionPolicy:
    """The organisation's policy (the defaults until an admin changes them); not saved by reading."""
    return CompressionPolicy.objects.filter(organization=organization).first() or CompressionPolicy(
        organization=organization)


@transaction.atomic
def compression_policy_update(*, actor: Actor, **limits: float | None) -> CompressionPolicy:
    actor.require(Cap.ORG_MANAGE, "change the organisation's compression policy")
    policy, _ = for_update(CompressionPolicy.objects.all()).get_or_create(organization=actor.organization)
    before = {name: getattr(policy, name) for name in POLICY_LIMITS}
    for name, value in limits.items():
        if name not in POLICY_LIMITS:
            raise InvalidCompressionPolicy(gettext('Unknown limit %(name)r; the limits are %(join)s.') % {"name": name, "join": ', '.join(POLICY_LIMITS)})
        if value is None:
            continue
        low, high = POLICY_LIMITS[name]
        if not low <= float(value) <= high:
            raise InvalidCompressionPolicy(gettext('%(capitalize)s must be between %(low)s and %(high)s; got %(value)s.') % {"capitalize": name.replace('_', ' ').capitalize(), "low": f"{low:g}", "high": f"{high:g}", "value": value})
        setattr(policy, name, float(value))
    policy.updated_by = actor.user
    policy.save()
    audit_record(action="compression_policy.updated", actor=actor.audit_actor, organization_id=actor.organization.pk,
                 target_type="inference.CompressionPolicy", target_id=policy.pk,
                 payload={"before": before, "after": {name: getattr(policy, name) for name in POLICY_LIMITS}})
    return policy


# ---------------------------------------------------------------- asking for a compression

def _compressible(version: ModelVersion) -> None:
    if version.task not in DATASETS:
        raise NotCompressible(gettext('%(version)s is a %(task)s model; Steward compresses text classifiers and generative models (Hugging Face weights).') % {"version": version, "task": version.task})
    if version.framework in compression.FRAMEWORKS.values():
        raise NotCompressible(gettext('%(version)s is already compressed; compress its source instead.') % {"version": version})
    if version.framework != "transformers":
        raise NotCompressible(gettext('%(version)s is stored as %(framework)s; Steward compresses Hugging Face weights.') % {"version": version, "framework": version.framework})


def _keep_float_check(version: ModelVersion, keep_float: list[str]) -> None:
    """The names must name Linear layers of the architecture: read from its config, built on the
    meta device (no weights read, no code of the upload's run)."""
    if len(keep_float) > 50 or not all(isinstance(p, str) and _PATTERN.match(p) for p in keep_float):
        raise InvalidInput(gettext("keep_float lists at most 50 layer names (letters, digits, '_' and '.')."))
    if not keep_float:
        return
    from inference.runtime import meta_skeleton

    skeleton = meta_skeleton(version, _auto_class(version.task))
    try:
        compression.kept_float(compression.linear_layers(skeleton), keep_float)
    except compression.InputError as exc:
        raise InvalidInput(gettext('keep_float: %(exc)s.') % {"exc": exc}) from None


def _texts_of(upload: BinaryIO) -> tuple[list[str], str]:
    text, digest = upload_text(upload, max_bytes=settings.JOB_MAX_BYTES)
    return [line.strip() for line in text.splitlines() if line.strip()], digest


def _held_out(version: ModelVersion, dataset: str, upload: BinaryIO | None, upload_name: str,
              label_column: str) -> tuple[dict[str, Any], str, str, int]:
    """(content, name, sha256, rows) of the held-out data the loss is measured on."""
    if dataset not in DATASETS[version.task]:
        raise InvalidInput(gettext('Unknown dataset %(dataset)r for a %(task)s model; use %(join)s.') % {"dataset": dataset, "task": version.task, "join": ' or '.join(repr(d) for d in DATASETS[version.task])})
    limit = settings.COMPRESSION_MAX_ROWS
    if version.task == Task.TEXT:
        if dataset == "evaluation":
            latest = (Evaluation.objects.filter(model_version=version, status=JobStatus.DONE)
                      .order_by("-finished_at").first())
            if latest is None:
                raise InvalidInput(gettext("%(version)s has no finished evaluation to measure the loss on: upload held-out rows with their labels (dataset 'upload'), or evaluate the version first.") % {"version": version})
            with default_storage.open(latest.dataset_path, "rb") as handle:
                content = json.loads(handle.read())
            name, digest = latest.dataset_name, latest.dataset_sha256
        else:
            if upload is None:
                raise InvalidInput(gettext("Upload a CSV of held-out rows: a 'text' column and the true label."))
            rows, targets, digest = evaluation_parse(upload, version, label_column)
            content, name = {"rows": rows, "targets": targets}, upload_name or "heldout.csv"
        count = len(content["rows"])
    else:
        if dataset == "demo-heldout":
            with DEMO_HELDOUT.open("rb") as handle:
                texts, digest = _texts_of(handle)
            name = "demo-heldout (UCI Sentiment Labelled Sentences, 300 held-out sentences)"
        else:
            if upload is None:
                raise InvalidInput(gettext('Upload a UTF-8 text file of held-out texts, one a line.'))
            texts, digest = _texts_of(upload)
            name = upload_name or "heldout.txt"
        content, count = {"texts": texts}, len(texts)
    if not MIN_ROWS <= count <= limit:
        raise InvalidInput(gettext('Measuring a compression needs %(MIN_ROWS)s to %(limit)s held-out rows; this data has %(count)s.') % {"MIN_ROWS": MIN_ROWS, "limit": limit, "count": count})
    return content, name[:200], digest, count


def compression_create(*, actor: Actor, version: ModelVersion, method: str = compression.METHOD,
                       keep_float: list[str] | None = None, dataset: str = "", upload: BinaryIO | None = None,
                       upload_name: str = "", label_column: str = "label") -> Compression:
    """Checks the request and the held-out data, stores the data and queues the job.

    Raises NotCompressible (409), InvalidInput (400), WorkerUnavailable (503); nothing is stored on any of them.
    """
    actor.require(Cap.MODEL_REGISTER, "compress model versions")
    _compressible(version)
    if method not in compression.METHODS:
        raise InvalidInput(gettext('Unknown method %(method)r; use %(join)s.') % {"method": method, "join": ', '.join(compression.METHODS)})
    if version.task not in compression.METHOD_TASKS[method]:
        raise InvalidInput(gettext('The method %(method)s applies to text classifiers; %(version)s is a %(task)s model.') % {"method": method, "version": version, "task": version.task})
    keep = list(keep_float or [])
    if keep and method != compression.METHOD:
        raise InvalidInput(gettext('Layers are kept in float by int8 compression only; %(method)s keeps every weight in float32.') % {"method": method})
    _keep_float_check(version, keep)
    content, name, digest, rows = _held_out(version, dataset or DATASETS[version.task][0], upload, upload_name,
                                            label_column)
    queue = generation_queue() if version.task == Task.GENERATION else serving_queue()
    if queue is None:
        raise WorkerUnavailable(gettext('No %(value)s worker is running; the compression was not created.') % {"value": 'generation' if version.task == Task.GENERATION else 'inference'})
    path = f"compressions/{actor.organization.pk}/{uuid.uuid4().hex}.json"
    with stored_input(path, json.dumps(content).encode()) as stored, transaction.atomic():
        job = Compression.objects.create(
            organization=actor.organization, source_version=version, method=method, keep_float=keep,
            dataset_name=name, dataset_sha256=digest, dataset_path=stored, rows_total=rows, created_by=actor.user)
        audit_record(action="compression.requested", actor=actor.audit_actor, organization_id=actor.organization.pk,
                     target_type="inference.Compression", target_id=job.pk,
                     payload={"model": version.model.name, "version": version.version, "method": method,
                              "keep_float": keep, "dataset": name, "dataset_sha256": digest, "rows": rows})
        COMPRESSIONS.send_on_commit(job.pk, queue=queue)
    return job


# ---------------------------------------------------------------- running it (worker)

def _auto_class(task: str) -> Any:
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    return AutoModelForCausalLM if task == Task.GENERATION else AutoModelForSequenceClassification


def compression_run(*, compression_id: int) -> None:
    """Compresses, reloads what was written (what will be served), measures it against the source,
    and registers it as a draft version of the same model."""
    import torch
    from transformers import AutoTokenizer

    from inference.ml import artifacts
    from inference.runtime import artifact_folder

    if not job_claim(Compression, compression_id, rows_done=0, stage="compressing"):
        return
    job = Compression.objects.select_related("source_version__model", "created_by", "organization").get(
        pk=compression_id)
    source = job.source_version
    with default_storage.open(job.dataset_path, "rb") as handle:
        content = json.loads(handle.read())
    if source.task == Task.GENERATION:  # as the generation worker decodes, so that the speed measured is its own
        torch.set_num_threads(settings.GENERATION_THREADS)
    folder = artifact_folder(source)
    auto = _auto_class(source.task)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
    if source.task == Task.GENERATION:
        from inference.ml.language_models import load_causal_lm

        float_model = load_causal_lm(folder)
    else:
        with BUILDING:
            float_model = auto.from_pretrained(str(folder), local_files_only=True, use_safetensors=True,
                                               trust_remote_code=False).eval()
    out = Path(tempfile.mkdtemp(prefix="steward-compress-"))
    try:
        # what is measured is read back from what was written, as it will be served
        if job.method == compression.ONNX_METHOD:
            manifest = compression.export_onnx(float_model, tokenizer, folder, out / "model",
                                               source_sha256=source.artifact_sha256)
            served = compression.OnnxSession(out / "model", threads=torch.get_num_threads())
        else:
            manifest = compression.save(compression.compress(float_model, job.keep_float), folder, out / "model",
                                        source_sha256=source.artifact_sha256, keep_float=job.keep_float)
            served = compression.load(out / "model", auto)
        job_beat(Compression, compression_id, stage="measuring")

        def progress(done: int) -> None:
            job_beat(Compression, compression_id, rows_done=done)

        if source.task == Task.GENERATION:
            measured = compression.measure_generative(float_model, served, tokenizer, content["texts"],
                                                      progress=progress)
        else:
            measured = compression.measure_classifier(float_model, served, tokenizer, content["rows"],
                                                      content["targets"], progress=progress)
        measured.update({
            "method": job.method, "description": compression.METHODS[job.method], "keep_float": job.keep_float,
            "quantized_layers": len(manifest.get("layers", [])), "source_version": source.version,
            "source_sha256": source.artifact_sha256, "dataset": job.dataset_name, "dataset_sha256": job.dataset_sha256,
            "bytes": {"source": compression.folder_bytes(folder), "compressed": compression.folder_bytes(out / "model")},
            "memory_bytes": {"source": compression.memory_bytes(float_model), "compressed": compression.memory_bytes(served)},
            "torch_threads": torch.get_num_threads(), "compression": job.pk, "device": "cpu",
        })
        job_beat(Compression, compression_id, stage="registering")
        archive = io.BytesIO(artifacts.pack_directory(out / "model"))
        _register(job, measured, archive)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _card(source: ModelVersion, measured: dict[str, Any]) -> dict[str, Any]:
    card = dict(source.card)
    kept = f", {', '.join(measured['keep_float'])} kept in float" if measured["keep_float"] else ""
    card["training_data"] = (f"v{source.version} compressed by Steward: {measured['description']}{kept}; the "
                             "weights are otherwise the source's. " + (source.card.get("training_data") or ""))
    card["metrics"] = f"{headline(measured)} Source v{source.version}: " + (source.card.get("metrics") or "")
    return card


def headline(measured: dict[str, Any]) -> str:
    """What the compression cost and bought, in one sentence."""
    if "source_perplexity" in measured:
        agreement = measured["greedy_agreement"]
        return gettext(
            "Compressed (%(method)s): perplexity %(compressed)s against the source's %(source)s (x%(ratio)s) on "
            "%(texts)s held-out texts; %(agreement)s of the source's greedy tokens predicted alike; decoding "
            "x%(speedup)s as fast on CPU.") % {
            "method": measured["method"], "compressed": f"{measured['compressed_perplexity']:.2f}",
            "source": f"{measured['source_perplexity']:.2f}", "ratio": f"{measured['perplexity_ratio']:.2f}",
            "texts": measured["texts"], "agreement": f"{0 if agreement is None else agreement:.1%}",
            "speedup": f"{measured['speedup']:.2f}"}
    return gettext(
        "Compressed (%(method)s): accuracy %(compressed)s against the source's %(source)s (%(delta)s points) on "
        "%(rows)s held-out rows; labels agree on %(agreement)s; x%(speedup)s as fast for one text on CPU.") % {
        "method": measured["method"], "compressed": f"{measured['compressed_accuracy']:.2%}",
        "source": f"{measured['source_accuracy']:.2%}", "delta": f"{measured['accuracy_delta_points']:+.2f}",
        "rows": measured["rows"], "agreement": f"{measured['label_agreement']:.1%}",
        "speedup": f"{measured['speedup']:.2f}"}


def _register(job: Compression, measured: dict[str, Any], archive: io.BytesIO) -> None:
    from inference.services.uploads import model_version_register

    source = job.source_version
    membership = job.created_by.memberships.get(organization=job.organization)
    actor = actor_for_membership(job.created_by, job.organization, membership.role)
    with transaction.atomic():
        version = model_version_register(
            actor=actor, name=source.model.name, task=source.task, archive=archive, card=_card(source, measured),
            description=source.model.description, metrics={"compression": measured}, compressed=True)
        if not job_finish(Compression, job.pk, result=measured, result_version=version, rows_done=job.rows_total,
                          stage="done"):
            raise RuntimeError(f"compression {job.pk} stopped running while it finished")  # rolls the version back
        audit_record(action="compression.completed", actor=WORKER, organization_id=job.organization_id,
                     target_type="inference.Compression", target_id=job.pk,
                     payload={"model": source.model.name, "source_version": source.version,
                              "version": version.version, "measured": measured})
        transaction.on_commit(lambda: version_compressed.send(sender=Compression, compression=job, version=version,
                                                              actor=actor))


COMPRESSIONS = register(JobKind(
    name="compression", model=Compression, target_type="inference.Compression",
    task="inference.tasks.compression_run_task", failed_action="compression.failed", actor=lambda job: WORKER,
    what="Compression", reset={"rows_done": 0, "stage": ""},
    stale_after=timedelta(minutes=10),  # compressing a large model beats only once it is done
))


# ---------------------------------------------------------------- evidence: the loss against the policy

def limits_exceeded(measured: dict[str, Any], policy: CompressionPolicy) -> list[str]:
    """Sentences naming each limit of the policy the measured loss goes beyond."""
    beyond = []
    if "source_perplexity" in measured:
        if measured["perplexity_ratio"] > policy.max_perplexity_ratio:
            beyond.append(gettext("perplexity is x%(ratio)s the source's, beyond the x%(limit)s this organisation "
                                  "accepts") % {"ratio": f"{measured['perplexity_ratio']:.2f}",
                                                "limit": f"{policy.max_perplexity_ratio:g}"})
        agreement = measured.get("greedy_agreement")
        if agreement is None or agreement < policy.min_greedy_agreement:
            shown = gettext("not measured") if agreement is None else f"{agreement:.1%}"
            beyond.append(gettext("agreement with the source's greedy tokens is %(shown)s, below the %(limit)s this "
                                  "organisation requires") % {"shown": shown,
                                                              "limit": f"{policy.min_greedy_agreement:.0%}"})
    elif -measured["accuracy_delta_points"] > policy.max_accuracy_drop:
        beyond.append(gettext("held-out accuracy dropped by %(drop)s points, more than the %(limit)s this "
                              "organisation accepts") % {"drop": f"{-measured['accuracy_delta_points']:.2f}",
                                                          "limit": f"{policy.max_accuracy_drop:g}"})
    return beyond


def compression_evidence(version: ModelVersion) -> Evidence | None:
    measured = (version.metrics or {}).get("compression")
    if not measured:
        return None
    policy = compression_policy_for(version.model.organization)
    beyond = limits_exceeded(measured, policy)
    return Evidence(
        title=gettext("Compression"), summary=headline(measured), verdict="fail" if beyond else "pass",
        url=reverse("model-detail", args=[version.model.name]) + f"?v={measured['source_version']}#compression",
        blocks_approval=bool(beyond),
        reason=gettext("This compressed version lost more than the organisation's compression policy accepts: "
                       "%(limits)s.") % {"limits": "; ".join(beyond)} if beyond else "",
        details={"source_version": measured["source_version"], "compression": measured.get("compression")},
    )


register_evidence_provider("compression", compression_evidence)
