"""DP-SGD: the accountant against Opacus's pinned values, composition, per-sample norms, resuming without spending twice."""

from __future__ import annotations

import pytest
import torch

from inference.ml import dp_accounting, private
from inference.ml.training import minilm_folder
from tests.inference.ml.norms import per_example_reference, training_path_norms

TEXTS = ["a dull and boring film", "wonderful acting", "I hated it", "a moving, funny film", "not bad",
         "the plot is thin", "gorgeous", "a waste of time"]
LABELS = [0, 1, 0, 1, 1, 0, 1, 0]


def test_the_accountant_gives_opacus_pinned_value() -> None:
    # Opacus's own test (tests/accountants_test.py): sigma 1.5, q 0.04, 2,250 steps, delta 1e-5
    assert dp_accounting.composed_epsilon([(1.5, 0.04, 2250)], 1e-5) == pytest.approx(7.32911117143, abs=1e-8)


def test_runs_compose_under_rdp_tighter_than_adding_epsilons() -> None:
    from opacus.accountants import RDPAccountant

    halves = dp_accounting.composed_epsilon([(1.5, 0.04, 1125), (1.5, 0.04, 1125)], 1e-5)
    assert halves == pytest.approx(dp_accounting.composed_epsilon([(1.5, 0.04, 2250)], 1e-5), rel=1e-12)
    assert halves < 2 * dp_accounting.composed_epsilon([(1.5, 0.04, 1125)], 1e-5)
    mixed = [(1.0, 0.01, 300), (0.8, 0.02, 150)]
    accountant = RDPAccountant()
    accountant.history = list(mixed)
    assert dp_accounting.composed_epsilon(mixed, 1e-5) == pytest.approx(accountant.get_epsilon(1e-5), rel=1e-12)
    assert dp_accounting.composed_epsilon([], 1e-5) == 0.0


def test_the_epsilon_meter_gives_the_accountants_epsilon_at_every_step() -> None:
    from opacus.accountants import RDPAccountant

    meter = dp_accounting.EpsilonMeter(1.1, 0.008, 1e-5)
    assert meter.epsilon(0) == 0.0
    for steps in (1, 7, 125, 2250):
        accountant = RDPAccountant()
        accountant.history = [(1.1, 0.008, steps)]
        assert meter.epsilon(steps) == pytest.approx(accountant.get_epsilon(1e-5), rel=1e-12)


def test_a_plan_spends_its_target_and_no_more() -> None:
    plan = dp_accounting.plan_run(target_epsilon=3.0, target_delta=1e-5, rows=1000, epochs=2, batch_size=25,
                            learning_rate=1e-3, max_grad_norm=1.0)
    assert plan.sample_rate == pytest.approx(1 / 40) and plan.steps == 80
    spent = dp_accounting.composed_epsilon([(plan.noise_multiplier, plan.sample_rate, plan.steps)], 1e-5)
    assert 3.0 - 0.05 <= spent <= 3.0


@pytest.fixture(scope="module")
def minilm():
    """The real MiniLM encoder with a fresh two-label head; dropout off, so one forward serves both sides."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = minilm_folder()
    model = AutoModelForSequenceClassification.from_pretrained(
        str(folder), num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return AutoTokenizer.from_pretrained(str(folder)), model


@pytest.mark.parametrize("clipping", ["bookkeeping", "ghost"])
def test_per_sample_gradient_norms_of_the_training_path_match_a_per_example_reference(minilm, clipping) -> None:
    tokenizer, model = minilm
    labels = torch.tensor(LABELS[:4])
    encoded = private.encode_texts(tokenizer, TEXTS[:4], max_length=16)
    reference = per_example_reference(model, encoded, labels)
    norms = training_path_norms(model, encoded, labels, clipping)
    assert torch.allclose(norms, reference, rtol=1e-3, atol=1e-5), (norms, reference)


def _tiny_bert():
    """A two-layer BERT on MiniLM's tokenizer: the accounting test is about steps, not weights."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_folder()))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=2)
    return tokenizer, BertForSequenceClassification(config)


def test_a_resumed_run_spends_no_more_than_one_run() -> None:
    texts, labels = TEXTS * 4, LABELS * 4
    plan = dp_accounting.plan_run(target_epsilon=4.0, target_delta=1e-4, rows=len(texts), epochs=2, batch_size=8,
                            learning_rate=1e-3, max_grad_norm=1.0)
    assert plan.steps == 8
    # an uninterrupted run
    tokenizer, model = _tiny_bert()
    whole = private.train_text(model, tokenizer, texts, labels, plan, max_length=16)
    # a run whose worker dies after step 3, resumed from its checkpoint by another
    saved: list[private.Checkpoint] = []
    seen = {"steps": 0}

    def crash_after_three(progress: private.Progress) -> None:
        seen["steps"] = progress.step
        if progress.step == 3:
            raise RuntimeError("worker lost")

    tokenizer, model = _tiny_bert()
    with pytest.raises(RuntimeError):
        private.train_text(model, tokenizer, texts, labels, plan, max_length=16, checkpoint=saved.append,
                           checkpoint_every=0.0, progress=crash_after_three, report_every=0.0)
    assert saved and saved[-1].steps == 3
    tokenizer, model = _tiny_bert()
    reports: list[private.Progress] = []
    resumed = private.train_text(model, tokenizer, texts, labels, plan, max_length=16, resume=saved[-1],
                                 progress=reports.append, report_every=0.0)
    assert resumed.steps == whole.steps == plan.steps
    # progress counts the resumed steps too, and its last epsilon is the accountant's
    assert [r.step for r in reports] == list(range(4, plan.steps + 1))
    assert reports[-1].epsilon == pytest.approx(resumed.epsilon, rel=1e-12)
    assert resumed.epsilon == pytest.approx(whole.epsilon, rel=1e-12)
    assert resumed.epsilon <= plan.target_epsilon


def test_a_batch_larger_than_the_physical_limit_is_split_and_still_one_step() -> None:
    texts, labels = TEXTS * 4, LABELS * 4
    plan = dp_accounting.plan_run(target_epsilon=4.0, target_delta=1e-4, rows=len(texts), epochs=2, batch_size=8,
                            learning_rate=1e-3, max_grad_norm=1.0)
    tokenizer, model = _tiny_bert()
    whole = private.train_text(model, tokenizer, texts, labels, plan, max_length=16)
    tokenizer, model = _tiny_bert()
    reports: list[private.Progress] = []
    split = private.train_text(model, tokenizer, texts, labels, plan, max_length=16, max_physical_batch=3,
                               progress=reports.append, report_every=0.0)
    assert split.steps == whole.steps == plan.steps  # logical steps, not physical batches
    assert [r.step for r in reports] == list(range(1, plan.steps + 1))
    assert split.epsilon == pytest.approx(whole.epsilon, rel=1e-12)  # the accountant saw plan.steps steps
    assert split.clipping == "bookkeeping"


def test_the_linear_schedule_decays_to_zero_and_a_resumed_run_keeps_to_it() -> None:
    """The rate each optimizer step used, as the checkpoints after it hold it: lr (steps - k) / steps at step k."""
    texts, labels = TEXTS * 4, LABELS * 4
    plan = dp_accounting.plan_run(target_epsilon=4.0, target_delta=1e-4, rows=len(texts), epochs=2, batch_size=8,
                            learning_rate=1e-3, max_grad_norm=1.0, lr_schedule="linear")
    expected = [1e-3 * (plan.steps - k) / plan.steps for k in range(plan.steps)]
    saved: list[private.Checkpoint] = []
    tokenizer, model = _tiny_bert()
    private.train_text(model, tokenizer, texts, labels, plan, max_length=16, checkpoint=saved.append,
                       checkpoint_every=0.0)
    used = {c.steps: c.optimizer_state["param_groups"][0]["lr"] for c in saved}
    assert [used[k + 1] for k in range(plan.steps)] == pytest.approx(expected, rel=1e-12)
    # resumed after step 3: steps 4.. go on down the same line, not from the top
    resumed: list[private.Checkpoint] = []
    tokenizer, model = _tiny_bert()
    private.train_text(model, tokenizer, texts, labels, plan, max_length=16, resume=saved[2], checkpoint=resumed.append,
                       checkpoint_every=0.0)
    assert saved[2].steps == 3
    assert [c.optimizer_state["param_groups"][0]["lr"] for c in resumed[:-1]] == pytest.approx(expected[3:], rel=1e-12)


def test_a_constant_schedule_and_plans_stored_before_schedules_keep_the_rate() -> None:
    plan = dp_accounting.plan_run(target_epsilon=4.0, target_delta=1e-4, rows=100, epochs=2, batch_size=10,
                            learning_rate=1e-3, max_grad_norm=1.0)
    assert plan.lr_schedule == "constant"  # the default
    assert {dp_accounting.learning_rate_at(plan, k) for k in range(plan.steps)} == {1e-3}
    stored = plan.as_dict()
    del stored["lr_schedule"]  # a job queued by the previous release
    assert dp_accounting.Plan(**stored).lr_schedule == "constant"
    with pytest.raises(ValueError, match="lr_schedule must be one of constant, linear"):
        dp_accounting.plan_run(target_epsilon=4.0, target_delta=1e-4, rows=100, epochs=2, batch_size=10,
                         learning_rate=1e-3, max_grad_norm=1.0, lr_schedule="cosine")
