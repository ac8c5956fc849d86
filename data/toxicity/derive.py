"""How train_subset.csv and heldout.csv were derived from Davidson et al.'s labelled tweets (run once, by hand).

    python data/toxicity/derive.py ../shared/datasets/toxicity

Held out first: 2,000 tweets drawn at random (seed 7), keeping the data's own mix of classes (about
6 % hate, 77 % offensive, 17 % neither), on which the demo `moderation` model is evaluated. From the
rest, training takes every hate tweet and 2,500 each of offensive and neither (seed 7): hate is rare,
and a model trained on the natural mix seldom predicts it. Columns: label (hate, offensive,
neither: the majority of the annotators), tweet (as published, HTML entities and all).
"""

import csv
import random
import sys
from pathlib import Path

LABELS = ["hate", "offensive", "neither"]
source = Path(sys.argv[1]) / "davidson_labeled_data.csv"
here = Path(__file__).resolve().parent
with source.open(encoding="utf-8") as handle:
    rows = [(LABELS[int(r["class"])], r["tweet"]) for r in csv.DictReader(handle)]
rng = random.Random(7)
rng.shuffle(rows)
heldout, rest = rows[:2000], rows[2000:]
train = [r for r in rest if r[0] == "hate"]
for label in ("offensive", "neither"):
    train += [r for r in rest if r[0] == label][:2500]
rng.shuffle(train)
for name, part in (("heldout.csv", heldout), ("train_subset.csv", train)):
    with (here / name).open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["label", "tweet"])
        writer.writerows(part)
    print(name, len(part), {label: sum(1 for r in part if r[0] == label) for label in LABELS})
