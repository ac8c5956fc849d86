"""Privacy accounting for DP-SGD runs: plain Python, no torch.

Rényi DP (Opacus's RDPAccountant) for the subsampled Gaussian mechanism with Poisson sampling. A
run is the triple (noise multiplier sigma, sample rate q, steps); the runs on one dataset compose
by adding their RDP curves order by order (what the accountant does over its history), then one
conversion to (epsilon, delta) at the dataset's delta. That is tighter than adding the runs'
epsilons, and it is the same arithmetic Opacus uses inside one run.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

ACCOUNTANT = "rdp"


@dataclass(frozen=True)
class Plan:
    """What a run will spend: fixed before it starts, reserved in the ledger."""

    target_epsilon: float
    target_delta: float
    epochs: int
    batch_size: int
    learning_rate: float
    max_grad_norm: float
    rows: int  # training rows (the held-out rows are not among them)
    sample_rate: float
    steps: int
    noise_multiplier: float
    accountant: str = ACCOUNTANT
    lr_schedule: str = "constant"  # the learning rate over the run (SCHEDULES), as plans stored before the choice had it

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


SCHEDULES = {
    "constant": "the learning rate throughout",
    "linear": "decays linearly from the learning rate to zero over the run's steps",
}


def learning_rate_at(plan: Plan, step: int) -> float:
    """The learning rate of optimizer step `step` (0-based), from the plan alone, so a resumed run goes on where it was.

    A linear decay is what Li et al. (2022) fine-tune with under DP-SGD (the late, small steps
    average out the noise). On the demo `sentiment` base over the full SST-2 training set (a lent H100,
    batch 4096, 136 steps, epsilon 8) it did worse than a constant rate at the same mean rate and at
    the same peak, private or not (bench/RESULTS.md, bench-dp-gpu), so constant is the default.
    """
    if plan.lr_schedule == "linear":
        return plan.learning_rate * max(plan.steps - step, 0) / max(plan.steps, 1)
    return plan.learning_rate


def plan_run(*, target_epsilon: float, target_delta: float, rows: int, epochs: int, batch_size: int,
             learning_rate: float, max_grad_norm: float, lr_schedule: str = "constant") -> Plan:
    """The noise multiplier that reaches (target_epsilon, target_delta) after `epochs` of Poisson-sampled steps.

    The sample rate and step count are Opacus's own for this loader (q = 1 / ceil(rows / batch_size),
    ceil(rows / batch_size) steps per epoch), so the noise is what `make_private_with_epsilon` picks.
    """
    from opacus.accountants.utils import get_noise_multiplier

    if lr_schedule not in SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {', '.join(SCHEDULES)}; got {lr_schedule!r}.")
    per_epoch = math.ceil(rows / batch_size)
    sample_rate = 1 / per_epoch
    sigma = get_noise_multiplier(target_epsilon=target_epsilon, target_delta=target_delta, sample_rate=sample_rate,
                                 epochs=epochs, accountant=ACCOUNTANT)
    return Plan(target_epsilon=target_epsilon, target_delta=target_delta, epochs=epochs, batch_size=batch_size,
                learning_rate=learning_rate, max_grad_norm=max_grad_norm, rows=rows, sample_rate=sample_rate,
                steps=epochs * per_epoch, noise_multiplier=float(sigma), lr_schedule=lr_schedule)


def rdp_curve(runs: list[tuple[float, float, int]]) -> Any:
    """The summed RDP of runs (noise multiplier, sample rate, steps) at the accountant's orders: composition."""
    import numpy as np
    from opacus.accountants import RDPAccountant
    from opacus.accountants.analysis.rdp import compute_rdp

    total = np.zeros(len(RDPAccountant.DEFAULT_ALPHAS))
    for sigma, q, steps in runs:
        if steps > 0:
            total = total + np.asarray(compute_rdp(q=q, noise_multiplier=sigma, steps=steps,
                                                   orders=RDPAccountant.DEFAULT_ALPHAS))
    return total


def epsilon_of(curve: Any, delta: float) -> float:
    from opacus.accountants import RDPAccountant
    from opacus.accountants.analysis.rdp import get_privacy_spent

    if not curve.any():
        return 0.0
    epsilon, _ = get_privacy_spent(orders=RDPAccountant.DEFAULT_ALPHAS, rdp=curve, delta=delta)
    return float(epsilon)


def composed_epsilon(runs: list[tuple[float, float, int]], delta: float) -> float:
    """Epsilon at `delta` of several runs on the same data, each (noise multiplier, sample rate, steps).

    The same arithmetic as Opacus's RDPAccountant over a history of these runs.
    """
    return epsilon_of(rdp_curve(runs), delta)


class EpsilonMeter:
    """Epsilon after n steps of one run, as the accountant gives it, for the price of a multiplication.

    RDP composes additively, so the curve of n identical steps is n times the curve of one step; the
    costly part (Opacus's series for the subsampled Gaussian at each order, about 0.1 s) is done once
    per run. Calling `accountant.get_epsilon` for every progress report redoes it each time: on a lent
    H100 that was 128 ms per call against a 17 ms training step. A test pins the two to each other.
    """

    def __init__(self, noise_multiplier: float, sample_rate: float, delta: float) -> None:
        self.per_step = rdp_curve([(noise_multiplier, sample_rate, 1)])
        self.delta = delta

    def epsilon(self, steps: int) -> float:
        return epsilon_of(self.per_step * steps, self.delta) if steps > 0 else 0.0
