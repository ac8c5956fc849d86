"""The languages a model supports (its card's `languages`), and the language of what it is asked.

A request in a language the card does not list is still served, but flagged: in the answer, in the
UI, and counted on the model's page ("this model was trained on English; this input looks like
Chinese"). Detection is py3langid (Lui and Baldwin's langid.py, 97 languages plus a few more, its model
shipped in the package): a naive Bayes over byte n-grams that needs no network and classifies a
sentence in well under a millisecond. Short texts are ambiguous to it ("Say hello." is English at
0.13), so an input is flagged only when the detector is confident; Han characters without kana or
hangul are read as Chinese from a few characters on, where the n-gram model is still unsure.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from django.utils.translation import gettext, gettext_noop

CONFIDENT = 0.75  # langid.py's normalised probability from which an input's language is taken as known
HAN_AT_LEAST = 4
_CODE = re.compile(r"^[a-z]{2,3}$")
_LOCK = threading.Lock()
# names py3langid's codes have where Django's LANG_INFO lists only regional variants (Django's own
# catalogues translate the names it lists; these are translated in Steward's)
_NAMES = {"zh": gettext_noop("Chinese"), "yue": gettext_noop("Cantonese"), "wuu": gettext_noop("Wu Chinese"),
          "la": gettext_noop("Latin")}


_IDENTIFIER: Any = None


def _identifier() -> Any:
    """The detector, loaded once a process (0.8 s: the model is decompressed from the package)."""
    global _IDENTIFIER
    if _IDENTIFIER is None:
        with _LOCK:
            if _IDENTIFIER is None:
                from py3langid.langid import MODEL_FILE, LanguageIdentifier

                _IDENTIFIER = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    return _IDENTIFIER


_KNOWN: frozenset[str] | None = None


def known_codes() -> frozenset[str]:
    """The codes the detector can name (read on every request that checks a card: built once)."""
    global _KNOWN
    if _KNOWN is None:
        _KNOWN = frozenset(str(code) for code in _identifier().nb_classes if code != "zxx")
    return _KNOWN


def name(code: str) -> str:
    """The language's name in the reader's language ('Chinese', '中文'), or its code where neither
    list has it."""
    from django.conf.locale import LANG_INFO

    if code in _NAMES:
        return gettext(_NAMES[code])
    info = LANG_INFO.get(code)
    return gettext(str(info["name"])) if info and "name" in info else code


def parse(value: str) -> list[str]:
    """The codes of a card's `languages` ('en, zh'): ISO 639 codes the detector knows, in order,
    without repeats; ValueError with a sentence otherwise."""
    codes: list[str] = []
    for part in re.split(r"[\s,;]+", value.strip().lower()):
        if not part:
            continue
        if not _CODE.match(part) or part not in known_codes():
            raise ValueError(gettext("The card's languages are ISO 639-1 codes separated by commas (e.g. 'en, zh'); "
                                     "%(code)r is not one Steward recognises.") % {"code": part})
        if part not in codes:
            codes.append(part)
    return codes


def supported(card: dict[str, Any] | None) -> list[str]:
    """The languages a version's card lists; [] where it states none (nothing is then flagged)."""
    try:
        return parse(str((card or {}).get("languages") or ""))
    except ValueError:
        return []


_HAN = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF))
_KANA_HANGUL = ((0x3040, 0x30FF), (0x1100, 0x11FF), (0x3130, 0x318F), (0xAC00, 0xD7AF))


def _within(code: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(low <= code <= high for low, high in ranges)


def _han_only(text: str) -> bool:
    """Mostly Han characters and no kana or hangul (which would make it Japanese or Korean)."""
    han = letters = 0
    for char in text:
        if not char.isalpha():
            continue
        letters += 1
        code = ord(char)
        if _within(code, _KANA_HANGUL):
            return False
        han += _within(code, _HAN)
    return han >= HAN_AT_LEAST and han * 2 >= letters


def detect(text: str) -> str | None:
    """The language `text` is in, where that is clear; None for a text too short or mixed to say."""
    if _han_only(text):
        return "zh"
    code, probability = _identifier().classify(text)
    return str(code) if probability >= CONFIDENT and code != "zxx" else None


def unsupported(card: dict[str, Any] | None, texts: list[str]) -> list[dict[str, Any]]:
    """The inputs (index, detected language) in a language the card does not list."""
    listed = supported(card)
    if not listed:
        return []
    flagged = []
    for index, text in enumerate(texts):
        code = detect(text) if isinstance(text, str) else None
        if code is not None and code not in listed:
            flagged.append({"input": index, "detected": code})
    return flagged


def notice(card: dict[str, Any] | None, flagged: list[dict[str, Any]]) -> dict[str, Any] | None:
    """What the answer says of `flagged` inputs: the languages, and a sentence for people."""
    if not flagged:
        return None
    listed = supported(card)
    trained = gettext(" and ").join(name(code) for code in listed)
    detected = flagged[0]["detected"]
    several = len({f["detected"] for f in flagged}) > 1
    like = gettext("other languages") if several else name(detected)
    if len(flagged) == 1:
        message = gettext("This model was trained on %(trained)s; this input looks like %(like)s. It was answered, "
                          "but its answer may be unreliable.")
    else:
        message = gettext("This model was trained on %(trained)s; these inputs look like %(like)s. They were "
                          "answered, but the answers may be unreliable.")
    return {"supported": listed, "inputs": flagged, "message": message % {"trained": trained, "like": like}}
