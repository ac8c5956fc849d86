"""Derives data/sms/ham.txt from the SMS Spam Collection (UCI, Almeida & Hidalgo 2011, CC BY 4.0).

The demo's private text for fine-tuning a generative model: 2,400 of the collection's legitimate
("ham") messages of 4 words or more, shuffled with seed 7, one a line. Real people's messages, as
an organisation's support tickets or notes would be: the reason they are fine-tuned on privately.

    python data/sms/derive.py ../shared/datasets/sms_spam/SMSSpamCollection
"""

import random
import sys
from pathlib import Path

source = Path(sys.argv[1])
messages = []
for line in source.read_text(encoding="utf-8").splitlines():
    label, _, text = line.partition("\t")
    text = " ".join(text.split())
    if label == "ham" and len(text.split()) >= 4:
        messages.append(text)
messages = sorted(set(messages))
random.Random(7).shuffle(messages)
(Path(__file__).parent / "ham.txt").write_text("\n".join(messages[:2400]) + "\n", encoding="utf-8")
