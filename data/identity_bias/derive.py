"""How templates.csv and terms.txt were derived from the identity madlibs (run once, by hand).

    python data/identity_bias/derive.py ../shared/datasets/identity_bias

Each madlib sentence is turned back into its template by replacing the identity term it holds
with {identity}; templates that occur with every term are kept, balanced between BAD (label 1)
and NOT_BAD (label 0), 24 of each, chosen with a fixed seed.
"""

import csv
import random
import re
import sys
from collections import defaultdict
from pathlib import Path

source = Path(sys.argv[1])
here = Path(__file__).resolve().parent
terms = [t.strip() for t in (source / "identity_terms.txt").read_text().splitlines() if t.strip()]
by_length = sorted(terms, key=len, reverse=True)
pattern = re.compile(r"\b(" + "|".join(re.escape(t) for t in by_length) + r")\b")
seen: dict[tuple[str, int], set[str]] = defaultdict(set)
with (source / "bias_madlibs_77k.csv").open(encoding="utf-8") as handle:
    for row in csv.DictReader(handle):
        found = pattern.findall(row["Text"])
        if len(found) != 1:
            continue
        template = pattern.sub("{identity}", row["Text"])
        seen[(template, int(row["Label"] == "BAD"))].add(found[0])
complete = sorted(key for key, found in seen.items() if set(terms) <= found)
rng = random.Random(0)
chosen = []
for label in (1, 0):
    pool = [key for key in complete if key[1] == label]
    chosen += rng.sample(pool, 24)
with (here / "templates.csv").open("w", encoding="utf-8", newline="") as handle:
    writer = csv.writer(handle)
    writer.writerow(["template", "label"])
    writer.writerows(sorted(chosen))
(here / "terms.txt").write_text("\n".join(terms) + "\n")
print(f"{len(complete)} complete templates; kept {len(chosen)}; {len(terms)} terms")
