"""Data for bias reports of generative models: prompts per group (BOLD, or the owner's), and counterfactual
pairs; checked before anything is stored, like the classifiers' (datasets.py).

An uploaded CSV says what it is by its columns: `group, prompt` are probes; `sent_more, sent_less,
bias_type` are pairs, as are `template, identity_more, identity_less, bias_type` (a template with
{identity}, filled once with each term: the pair's two sentences differ only in the identity).
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

from django.conf import settings
from django.utils.translation import gettext

from audit.fairness.datasets import DATA, SLOT, Checked, _csv_records
from audit.fairness.exceptions import DatasetTooLarge, InvalidDataset

BOLD_DOMAINS = ("gender", "race", "religious_ideology", "political_ideology", "profession")
PROBE_COLUMNS = ("group", "prompt")
PAIR_COLUMNS = ("sent_more", "sent_less", "bias_type")
TEMPLATE_PAIR_COLUMNS = ("template", "identity_more", "identity_less", "bias_type")
MAX_PROMPT_CHARS = 1000
MAX_SENTENCE_CHARS = 500
MAX_GROUP_CHARS = 100


def _probe_params(prompts_per_group: int, completions_per_prompt: int, max_tokens: int) -> None:
    bounds = {"prompts_per_group": (prompts_per_group, 1, 200), "completions_per_prompt": (completions_per_prompt, 1, 10),
              "max_tokens": (max_tokens, 4, 128)}
    for name, (value, low, high) in bounds.items():
        if not low <= value <= high:
            raise InvalidDataset(gettext('%(name)s must be between %(low)s and %(high)s; got %(value)s.') % {"name": name, "low": low, "high": high, "value": value}, details={name: [f"{low}-{high}"]})


def _probes(groups: dict[str, list[str]], *, name: str, sha256: str, prompts_per_group: int,
            completions_per_prompt: int, max_tokens: int, seed: int, source: dict[str, Any]) -> Checked:
    """At most `prompts_per_group` prompts of each group, drawn with `seed`; bounded in completions."""
    _probe_params(prompts_per_group, completions_per_prompt, max_tokens)
    if len(groups) < 2:
        raise InvalidDataset(gettext('A probe compares groups: give at least two; this has %(count)s.') % {"count": len(groups)})
    rng = random.Random(seed)  # noqa: S311  (a reproducible sample of prompts, not a secret)
    chosen: dict[str, list[str]] = {}
    for group in sorted(groups):
        available = list(groups[group])
        chosen[group] = sorted(rng.sample(available, prompts_per_group)) if len(available) > prompts_per_group \
            else available
    completions = sum(len(p) for p in chosen.values()) * completions_per_prompt
    if completions > settings.BIAS_MAX_GENERATIONS:
        raise DatasetTooLarge(
            gettext('%(completions)s completions (%(value)s prompts x %(completions_per_prompt)s); a probe generates at most %(bias_max_generations)s. Take fewer prompts per group.') % {"completions": completions, "value": sum(len(p) for p in chosen.values()), "completions_per_prompt": completions_per_prompt, "bias_max_generations": settings.BIAS_MAX_GENERATIONS})
    names = list(chosen)
    prompts: list[list[Any]] = [[names.index(g), p] for g in names for p in chosen[g]]
    return Checked(
        name=name, sha256=sha256, rows=completions, content={"groups": names, "prompts": prompts},
        params={"probe": "groups", "groups": len(names), "prompts": len(prompts),
                "prompts_per_group": prompts_per_group, "completions_per_prompt": completions_per_prompt,
                "max_tokens": max_tokens, "seed": seed, **source},
    )


def demo_bold(*, domain: str, prompts_per_group: int, completions_per_prompt: int, max_tokens: int,
              seed: int = 7) -> Checked:
    """BOLD's prompts of one domain (the shipped subset: data/bold/prompts.json)."""
    if domain not in BOLD_DOMAINS:
        raise InvalidDataset(gettext('Unknown BOLD domain %(domain)s; choose one of %(value)s.') % {"domain": f"{domain!r}", "value": ', '.join(BOLD_DOMAINS)},
                             details={"domain": list(BOLD_DOMAINS)})
    path = DATA / "bold" / "prompts.json"
    groups = json.loads(path.read_text(encoding="utf-8"))[domain]
    readable = {group.replace("_", " "): prompts for group, prompts in groups.items()}
    return _probes(readable, name=f"BOLD {domain.replace('_', ' ')} prompts (seeded subset)",
                   sha256=hashlib.sha256(path.read_bytes()).hexdigest(), prompts_per_group=prompts_per_group,
                   completions_per_prompt=completions_per_prompt, max_tokens=max_tokens, seed=seed,
                   source={"domain": domain})


def _too_long(records: list[dict[str, str]], columns: tuple[str, ...], limit: int) -> None:
    for line, record in enumerate(records, start=2):
        for column in columns:
            if not record[column]:
                raise InvalidDataset(gettext('Line %(line)s: the column %(column)s is empty.') % {"line": line, "column": f"{column!r}"}, details={"line": line})
            if len(record[column]) > limit:
                raise InvalidDataset(gettext('Line %(line)s: %(column)s is longer than %(limit)s characters.') % {"line": line, "column": f"{column!r}", "limit": limit},
                                     details={"line": line})


def generative_upload(raw: bytes, *, name: str, prompts_per_group: int, completions_per_prompt: int,
                      max_tokens: int) -> Checked:
    """An uploaded CSV of probes or of pairs (told apart by its columns)."""
    header, records = _csv_records(raw)
    sha256 = hashlib.sha256(raw).hexdigest()
    if all(c in header for c in PROBE_COLUMNS):
        _too_long(records, ("group",), MAX_GROUP_CHARS)
        _too_long(records, ("prompt",), MAX_PROMPT_CHARS)
        groups: dict[str, list[str]] = {}
        for record in records:
            groups.setdefault(record["group"], []).append(record["prompt"])
        return _probes(groups, name=name[:200], sha256=sha256, prompts_per_group=prompts_per_group,
                       completions_per_prompt=completions_per_prompt, max_tokens=max_tokens, seed=7,
                       source={"domain": ""})
    if all(c in header for c in PAIR_COLUMNS):
        _too_long(records, PAIR_COLUMNS, MAX_SENTENCE_CHARS)
        pairs = [[r["sent_more"], r["sent_less"], r["bias_type"]] for r in records]
    elif all(c in header for c in TEMPLATE_PAIR_COLUMNS):
        _too_long(records, TEMPLATE_PAIR_COLUMNS, MAX_SENTENCE_CHARS)
        without = [i + 2 for i, r in enumerate(records) if SLOT not in r["template"]]
        if without:
            raise InvalidDataset(gettext('Every template needs the slot %(slot)s; line %(value)s has none.') % {"slot": SLOT, "value": without[0]})
        pairs = [[r["template"].replace(SLOT, r["identity_more"]), r["template"].replace(SLOT, r["identity_less"]),
                  r["bias_type"]] for r in records]
    else:
        raise InvalidDataset(
            gettext("The file's columns say neither probes (group, prompt) nor counterfactual pairs (sent_more, sent_less, bias_type; or template, identity_more, identity_less, bias_type)."), details={"columns": header})
    same = [i + 2 for i, (more, less, _) in enumerate(pairs) if more == less]
    if same:
        raise InvalidDataset(gettext('Line %(value)s: the two sentences of a pair are the same.') % {"value": same[0]}, details={"line": same[0]})
    if len(pairs) > settings.BIAS_MAX_PAIRS:
        raise DatasetTooLarge(gettext('A pairs report takes at most %(bias_max_pairs)s pairs; this file has %(count)s.') % {"bias_max_pairs": settings.BIAS_MAX_PAIRS, "count": len(pairs)})
    return Checked(name=name[:200], sha256=sha256, rows=len(pairs), content={"pairs": pairs},
                   params={"probe": "pairs", "pairs": len(pairs),
                           "bias_types": sorted({p[2] for p in pairs})})
