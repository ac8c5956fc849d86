"""The output gate of the guardrails: text is released a checked sentence at a time, and a stopped
choice releases nothing more (the scores here come from a function, so each case is exact; the
moderation model itself is exercised end to end in tests/inference/test_guardrails.py)."""

from __future__ import annotations

import pytest

from inference.services.guard_runs import Guard, OutputGate, outcome_of, sentences

POLICY = {"id": 1, "scope": "organisation", "revision": 3, "output_action": "block", "output_threshold": 0.5,
          "blocked_patterns": [r"(?i)project\s+falcon"], "moderation_version_id": 1, "moderation_model": "m@1"}


def scorer(texts: list[str]) -> list[dict[str, float]]:
    return [{"hate": 0.9 if "hateful" in t else 0.1, "offensive": 0.2} for t in texts]


def gate_of(policy: dict, released: list[str]) -> tuple[Guard, OutputGate]:
    guard = Guard(policy, organization_id=1, score=scorer)
    gate = guard.output_gate(0, released.append)
    assert gate is not None
    return guard, gate


def test_sentences_keep_their_ends_and_drop_empty_pieces() -> None:
    assert sentences("One. Two!  Three?\nFour") == ["One. ", "Two!  ", "Three?\n", "Four"]
    assert sentences("He said \u201cno.\u201d Then left.") == ["He said \u201cno.\u201d ", "Then left."]
    assert sentences("3.14 is pi") == ["3.14 is pi"]  # a point inside a number ends nothing


def test_text_is_released_a_checked_sentence_at_a_time(db) -> None:
    released: list[str] = []
    guard, gate = gate_of(POLICY, released)
    for delta in ["The sky ", "is blue. It ", "is day", "light."]:
        assert gate.feed(delta)
    assert released == ["The sky is blue. "]  # the second sentence has no end yet
    gate.finish()
    assert released == ["The sky is blue. ", "It is daylight."] and gate.text == "The sky is blue. It is daylight."
    record = guard.record()
    assert record["outcome"] == "" and record["decisions"][-1]["sentences"] == 2


def test_a_sentence_over_the_threshold_stops_the_choice_and_is_never_released(db) -> None:
    released: list[str] = []
    guard, gate = gate_of(POLICY, released)
    assert gate.feed("A calm sentence. ")
    assert not gate.feed("Now a hateful one. And more.")
    assert not gate.feed("anything after")
    gate.finish()
    assert released == ["A calm sentence. "]
    record = guard.record()
    assert record["outcome"] == "filtered"
    stop = next(d for d in record["decisions"] if d["action"] == "stopped")
    assert stop["check"] == "moderation" and stop["fired"] == ["hate"] and stop["sentence"] == "Now a hateful one."


def test_a_pattern_that_straddles_two_sentences_is_caught(db) -> None:
    released: list[str] = []
    guard, gate = gate_of({**POLICY, "output_action": "off"}, released)
    assert gate.feed("We call it Project\n")
    assert not gate.feed("Falcon internally.\n")
    assert released == ["We call it Project\n"]
    assert [d["check"] for d in guard.record()["decisions"] if d["action"] == "stopped"] == ["pattern"]


def test_flag_lets_the_sentence_through_and_marks_the_completion(db) -> None:
    released: list[str] = []
    guard, gate = gate_of({**POLICY, "output_action": "flag"}, released)
    assert gate.feed("A hateful sentence. A calm one. ")
    assert released == ["A hateful sentence. ", "A calm one. "]
    assert guard.record()["outcome"] == "flagged"


def test_a_run_on_without_an_end_is_checked_at_a_bound(db) -> None:
    released: list[str] = []
    _, gate = gate_of(POLICY, released)
    gate.feed("word " * 100)
    assert released and all(len(piece) <= 400 for piece in released)


def test_without_a_policy_nothing_is_gated() -> None:
    assert Guard(None, organization_id=1).output_gate(0, print) is None
    assert Guard({"id": 2, "output_action": "off"}, organization_id=1).output_gate(0, print) is None


@pytest.mark.parametrize(("actions", "outcome"), [
    ({"passed", "masked"}, ""), ({"flagged"}, "flagged"), ({"flagged", "stopped"}, "filtered"),
    ({"blocked", "flagged"}, "blocked")])
def test_the_outcome_is_the_strongest_decision(actions, outcome) -> None:
    assert outcome_of([{"action": a} for a in actions]) == outcome


def _slow_verdict(policy: dict, prompt: str):
    """A PromptVerdict whose moderation waits for the test to let it finish."""
    import threading

    from inference.services.guard_runs import PromptVerdict

    go = threading.Event()

    def score(texts: list[str]) -> list[dict[str, float]]:
        if any("question" in text for text in texts):  # the prompt's check; the answer's are not held
            assert go.wait(timeout=60), "the test never let the prompt's check finish"
        return scorer(texts)

    guard = Guard(policy, organization_id=1, score=score)
    return guard, PromptVerdict(guard, "text", prompt), go


INPUT_POLICY = {**POLICY, "input_action": "block", "input_threshold": 0.5}


def test_text_written_before_the_prompts_verdict_is_held_then_released_in_order(db) -> None:
    guard, verdict, go = _slow_verdict(INPUT_POLICY, "A kind question.")
    released: list[str] = []
    hold = verdict.holding(released.append)
    hold("First. ")
    hold("Second. ")
    assert released == [] and not verdict.refused  # nothing leaves before the verdict
    go.set()
    assert verdict.wait() is None
    assert released == ["First. ", "Second. "]
    hold("Third.")
    assert released == ["First. ", "Second. ", "Third."]
    record = guard.record()
    assert record["decisions"][0]["check"] == "moderation" and record["decisions"][0]["action"] == "passed"


def test_a_refused_prompt_releases_nothing_and_stops_the_model(db) -> None:
    guard, verdict, go = _slow_verdict(INPUT_POLICY, "A hateful question.")
    released: list[str] = []
    hold = verdict.holding(released.append)
    hold("The model had begun. ")
    go.set()
    refused = verdict.wait()
    assert refused is not None and refused.decision["check"] == "moderation"
    assert verdict.refused  # the generation's callback stops on it
    hold("And went on.")
    assert released == []
    assert guard.record()["outcome"] == "blocked"


def test_the_prompts_decisions_come_first_in_the_record(db) -> None:
    guard, verdict, go = _slow_verdict(INPUT_POLICY, "A kind question.")
    released: list[str] = []
    gate = guard.output_gate(0, verdict.holding(released.append))
    assert gate is not None and gate.feed("An answer. ")  # checked while the prompt's check still runs
    go.set()
    verdict.wait()
    gate.finish()
    stages = [d["stage"] for d in guard.record()["decisions"]]
    assert stages[0] == "input" and released == ["An answer. "]
