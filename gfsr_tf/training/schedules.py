"""Learning-rate schedules by name (`TrainConfig.lr_schedule`), so the generic loop knows no
paper's schedule: it asks the registered schedule for each epoch's rate, or each step's.

A schedule is `Schedule(rate, per_step)`: `rate(train, epoch, step, steps_per_epoch)` with a
1-based epoch and a 0-based step within it. Per-epoch schedules are applied once at the start of
each epoch (and logged as `learning_rate` in metrics.jsonl); per-step ones before every step
(the step index is derived from the checkpointed epoch, so a resumed run agrees). Register a new
one with `register_schedule`; this module imports nothing from gfsr_tf, so the config can
validate names against it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Schedule:
    rate: Callable[..., float] | None     # None: the optimizer keeps train.learning_rate
    per_step: bool = False


def cyclic_multiplier(epoch: int, step_epochs: int, base: float) -> float:
    """The eye-gaze reference's triangular2 cyclic schedule (Karargyris et al.), stepped per
    epoch (0-based) and applied as their LambdaLR does: lr = base_lr * (base + (1 - base) * r),
    r rising 0 -> 1 over `step_epochs`, back to 0, each cycle's amplitude halved - so the rate
    moves between base_lr**2 and base_lr."""
    cycle = math.floor(1 + epoch / (2 * step_epochs))
    x = abs(epoch / step_epochs - 2 * cycle + 1)
    return base + (1 - base) * max(0.0, 1 - x) / 2 ** (cycle - 1)


def one_cycle(step: int, total_steps: int, peak: float, pct_start: float = 0.05,
              div_factor: float = 25.0, final_div_factor: float = 1e4) -> float:
    """MedicalPatchNet's schedule, with the step indices of PyTorch's OneCycleLR (cosine
    annealing): from peak / div_factor at step 0 up to `peak` at step pct_start * total - 1, then
    down to peak / div_factor / final_div_factor at step total - 1."""
    start = peak / div_factor
    end = start / final_div_factor
    up_end = float(pct_start * total_steps) - 1
    down_end = float(total_steps - 1)

    def anneal(a, b, frac):
        return b + (a - b) * (1 + math.cos(math.pi * min(max(frac, 0.0), 1.0))) / 2

    if step <= up_end:
        return anneal(start, peak, step / up_end if up_end > 0 else 1.0)
    return anneal(peak, end, (step - up_end) / (down_end - up_end) if down_end > up_end else 1.0)


SCHEDULES: dict[str, Schedule] = {
    "constant": Schedule(None),
    "triangular2": Schedule(lambda train, epoch, step, steps: train.learning_rate
                            * cyclic_multiplier(epoch - 1, train.lr_step_epochs,
                                                train.learning_rate)),
    "onecycle": Schedule(lambda train, epoch, step, steps: one_cycle(
        (epoch - 1) * steps + step, train.epochs * steps, train.learning_rate), per_step=True),
}


def register_schedule(name: str, schedule: Schedule) -> Schedule:
    SCHEDULES[name] = schedule
    return schedule


def get_schedule(name: str) -> Schedule:
    if name not in SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {name!r}; registered: "
                         f"{', '.join(sorted(SCHEDULES))}")
    return SCHEDULES[name]


def learning_rate(train, epoch: int) -> float:
    """The learning rate a per-epoch schedule sets for 1-based `epoch` (constant and per-step
    schedules: train.learning_rate, their base rate)."""
    schedule = get_schedule(train.lr_schedule)
    if schedule.rate is None or schedule.per_step:
        return train.learning_rate
    return schedule.rate(train, epoch, 0, 1)
