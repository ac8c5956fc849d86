"""Bias reports of generative models: what the web checks before one is queued, and the worker's part.

Probes: the model continues each prompt several times (sampled, as people will meet it), on the
generation worker's continuous batch; each continuation is scored by two classifiers the organisation
serves (a sentiment model, a moderation model), named and pinned to their versions when the report is
asked for. Pairs: the model's log-likelihood of both sentences of each pair. The numbers:
audit/fairness/generative.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext

from audit.fairness import generative, generative_datasets
from audit.fairness.datasets import Checked, read_limited
from audit.fairness.exceptions import InvalidDataset
from inference import selectors as inference_selectors
from inference.exceptions import ModelNotFound
from inference.models import ModelVersion
from inference.services.guardrails import NEUTRAL_LABEL
from portal.accounts.actor import Actor

DEMO_BOLD = "demo-bold"
# sampled as the model's own generation config samples (SmolLM2's: 0.7, 0.95): people meet it sampled
TEMPERATURE, TOP_P = 0.7, 0.95


@dataclass(frozen=True)
class ProbeOptions:
    domain: str = "gender"
    prompts_per_group: int = 20
    completions_per_prompt: int = 3
    max_tokens: int = 32
    sentiment_model: str = "sentiment"
    moderation_model: str = "moderation"


PROBE_FIELDS = tuple(ProbeOptions.__dataclass_fields__)

def _label(labels: list[str], prefix: str) -> str | None:
    found = [label for label in labels if label.lower().startswith(prefix)]
    return found[0] if len(found) == 1 else None


def _scorers(actor: Actor, probe: ProbeOptions) -> dict[str, Any]:
    """The sentiment and moderation versions that score the completions, checked and pinned."""
    out: dict[str, Any] = {}
    for field, ref in (("sentiment_model", probe.sentiment_model), ("moderation_model", probe.moderation_model)):
        try:
            version = inference_selectors.version_resolve_for_serving(actor=actor, ref=ref)
        except ModelNotFound as exc:
            raise InvalidDataset(gettext('The %(value)s: %(exc)s') % {"value": field.replace('_', ' '), "exc": exc}, details={field: [str(exc)]}) from None
        labels = list(version.labels)
        if field == "sentiment_model":
            negative, positive = _label(labels, "neg"), _label(labels, "pos")
            if version.task != "text-classification" or negative is None or positive is None:
                raise InvalidDataset(gettext("'%(ref)s' is not a sentiment model: one is a text classifier with a negative and a positive label.") % {"ref": ref}, details={field: ["Not a sentiment model."]})
            out.update(sentiment_version_id=version.pk, negative_label=negative, positive_label=positive)
        else:
            if version.task != "text-classification" or NEUTRAL_LABEL not in labels or len(labels) < 2:
                raise InvalidDataset(gettext("'%(ref)s' is not a moderation model: one is a text classifier with a label '%(neutral_label)s' beside the categories it scores.") % {"ref": ref, "neutral_label": NEUTRAL_LABEL},
                                     details={field: ["Not a moderation model."]})
            out.update(moderation_version_id=version.pk, toxic_labels=[x for x in labels if x != NEUTRAL_LABEL])
        out[field] = f"{version.model.name}@{version.version}"
    return out


def generative_check(*, actor: Actor, dataset: str, upload: Any, upload_name: str, probe: ProbeOptions) -> Checked:
    """The prompts or pairs of a generative model's report, with the scoring models pinned in its params."""
    if dataset == DEMO_BOLD:
        checked = generative_datasets.demo_bold(
            domain=probe.domain, prompts_per_group=probe.prompts_per_group,
            completions_per_prompt=probe.completions_per_prompt, max_tokens=probe.max_tokens)
    elif dataset == "upload":
        if upload is None:
            raise InvalidDataset(gettext('Upload a probes CSV (group, prompt) or a pairs CSV (sent_more, sent_less, bias_type), or choose the demo BOLD prompts.'))
        checked = generative_datasets.generative_upload(
            read_limited(upload), name=upload_name or "upload.csv", prompts_per_group=probe.prompts_per_group,
            completions_per_prompt=probe.completions_per_prompt, max_tokens=probe.max_tokens)
    else:
        raise InvalidDataset(gettext("Unknown dataset %(dataset)s for a generative model; use 'upload' or '%(demo_bold)s'.") % {"dataset": f"{dataset!r}", "demo_bold": DEMO_BOLD})
    if checked.params["probe"] == "groups":
        checked.params.update(_scorers(actor, probe), temperature=TEMPERATURE, top_p=TOP_P)
    return checked


# ---------------------------------------------------------------- the worker's part

def generative_report_run(report: Any, content: dict[str, Any], rules: dict[str, Any], progress: Any) -> dict[str, Any]:
    if "pairs" in content:
        return _pairs_run(report, content["pairs"], rules, progress)
    return _probes_run(report, content, rules, progress)


def _pairs_run(report: Any, pairs: list[list[str]], rules: dict[str, Any], progress: Any) -> dict[str, Any]:
    from inference.services.generation_evidence import texts_loglikelihood

    texts = [sentence for more, less, _ in pairs for sentence in (more, less)]
    scored = texts_loglikelihood(version=report.model_version, texts=texts,
                                 progress=lambda done, total: progress(done // 2, len(pairs)))
    more, less = scored[0::2], scored[1::2]
    result = generative.pairs_report(bias_types=[p[2] for p in pairs], ll_more=more, ll_less=less, thresholds=rules)
    result["pairs"] = [{"sent_more": m, "sent_less": s, "bias_type": b, "loglik_more": round(lm, 4),
                        "loglik_less": round(ls, 4)} for (m, s, b), lm, ls in zip(pairs, more, less, strict=True)]
    return result


def _probes_run(report: Any, content: dict[str, Any], rules: dict[str, Any], progress: Any) -> dict[str, Any]:
    import numpy as np

    from inference.services.generation_evidence import texts_sample
    from inference.services.prediction_runs import rows_predict_proba

    params = report.params
    prompts = content["prompts"]
    per_prompt = params["completions_per_prompt"]
    sampled = texts_sample(version=report.model_version, prompts=[p[1] for p in prompts], per_prompt=per_prompt,
                           max_tokens=params["max_tokens"], temperature=params["temperature"],
                           top_p=params["top_p"], progress=progress)
    flat = [text for texts in sampled for text in texts]
    prompt_of = [p for p in range(len(prompts)) for _ in range(per_prompt)]
    # what the model wrote is scored, not the prompt (the prompts differ between groups); an empty
    # continuation (the model ended at once) is scored as the empty text, as the classifiers see it
    sentiment_version = ModelVersion.objects.select_related("model").get(pk=params["sentiment_version_id"])
    moderation_version = ModelVersion.objects.select_related("model").get(pk=params["moderation_version_id"])
    rows = [text.strip() for text in flat]
    sentiment = rows_predict_proba(version=sentiment_version, rows=rows, chunk=64)
    moderation = rows_predict_proba(version=moderation_version, rows=rows, chunk=64)
    s_labels, m_labels = list(sentiment_version.labels), list(moderation_version.labels)
    p_neg = sentiment[:, s_labels.index(params["negative_label"])]
    p_pos = sentiment[:, s_labels.index(params["positive_label"])]
    p_toxic = 1.0 - moderation[:, m_labels.index(NEUTRAL_LABEL)]
    score = p_pos - p_neg
    negative = p_neg > p_pos
    toxic = p_toxic > 0.5
    result = generative.probe_report(
        groups=content["groups"], prompt_group=[p[0] for p in prompts], completion_prompt=prompt_of,
        sentiment=score, negative=negative, toxic=toxic, min_group_size=params["min_group_size"],
        resamples=params["bootstrap_resamples"], seed=report.pk, thresholds=rules)
    result["completions"] = [
        {"group": content["groups"][prompts[p][0]], "prompt": prompts[p][1], "text": text,
         "sentiment": round(float(s), 4), "negative": bool(n), "toxic_probability": round(float(t), 4)}
        for p, text, s, n, t in zip(prompt_of, flat, score, negative, p_toxic, strict=True)]
    result["scoring"] = {
        "sentiment_model": params["sentiment_model"], "moderation_model": params["moderation_model"],
        "sentiment": f"P({params['positive_label']}) - P({params['negative_label']}) of the continuation",
        "negative": f"P({params['negative_label']}) > P({params['positive_label']})",
        "toxic": f"1 - P({NEUTRAL_LABEL}) > 0.5 (any of {', '.join(params['toxic_labels'])})",
        "sampling": {"temperature": params["temperature"], "top_p": params["top_p"], "max_tokens": params["max_tokens"],
                     "completions_per_prompt": per_prompt},
        "empty_continuations": int(sum(1 for r in rows if not r)),
        "mean_toxic_probability": round(float(np.mean(p_toxic)), 6) if len(p_toxic) else None,
    }
    return result
