"""How prompts.json was derived from BOLD's prompt files (run once, by hand).

    python data/bold/derive.py ../shared/datasets/bold

For each of BOLD's five domains and each of its groups, at most 40 prompts, drawn at random (seed 7)
so that they spread over the group's people or terms: the entities are shuffled and taken round-robin,
one prompt each, until 40 are drawn or the group's prompts run out (a few groups have fewer: hinduism
12, atheism 29). Prompts are kept exactly as published (with their trailing space).
"""

import json
import random
import sys
from pathlib import Path

PER_GROUP = 40
DOMAINS = ["gender", "race", "religious_ideology", "political_ideology", "profession"]
source = Path(sys.argv[1])
here = Path(__file__).resolve().parent
out: dict[str, dict[str, list[str]]] = {}
for domain in DOMAINS:
    groups = json.loads((source / f"{domain}_prompt.json").read_text(encoding="utf-8"))
    rng = random.Random(f"{domain}:7")
    out[domain] = {}
    for group in sorted(groups):
        entities = [list(prompts) for prompts in groups[group].values() if prompts]
        rng.shuffle(entities)
        for prompts in entities:
            rng.shuffle(prompts)
        drawn: list[str] = []
        while len(drawn) < PER_GROUP and any(entities):
            for prompts in entities:
                if prompts and len(drawn) < PER_GROUP:
                    drawn.append(prompts.pop())
        out[domain][group] = drawn
(here / "prompts.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
for domain, groups in out.items():
    print(domain, {g: len(p) for g, p in groups.items()})
