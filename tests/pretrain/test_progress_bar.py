"""The pretraining progress bar: a remaining time whenever the run has a step or time
budget, the budget being whichever of them ends first."""

import io

import pytest

from spacy_lmcrf.pretrain.loop import RunProgress, budget_spent


def test_budget_spent_is_the_budget_that_ends_first():
    assert budget_spent(step=10, seconds=60, max_steps=20, max_minutes=0) == 0.5
    assert budget_spent(step=10, seconds=60, max_steps=0, max_minutes=4) == 0.25
    assert budget_spent(step=10, seconds=60, max_steps=20, max_minutes=4) == 0.5
    assert budget_spent(step=10, seconds=180, max_steps=20, max_minutes=4) == 0.75
    assert budget_spent(step=30, seconds=0, max_steps=20, max_minutes=0) == 1.0
    assert budget_spent(step=10, seconds=60, max_steps=0, max_minutes=0) == 0.0


def test_without_a_budget_the_bar_counts_steps():
    progress = RunProgress(max_steps=0, max_minutes=0, step=5, file=io.StringIO())
    assert progress.bar.total is None and progress.bar.n == 5
    progress.update(6, 1.0)
    assert progress.bar.n == 6
    progress.close()


def test_a_step_budget_is_the_bars_total():
    out = io.StringIO()
    progress = RunProgress(max_steps=40, max_minutes=0, step=10, file=out)
    assert progress.bar.total == 40 and progress.bar.n == 10  # a resumed run
    progress.update(12, 3.0, bpc="1.234")
    progress.close()
    assert "12/40" in out.getvalue() and "bpc=1.234" in out.getvalue()


@pytest.mark.parametrize(
    "max_steps,step,seconds,percent",
    [(0, 7, 45.0, 25.0), (100, 7, 45.0, 25.0), (20, 10, 45.0, 50.0)],
)
def test_a_time_budget_makes_a_bar_of_the_budget_spent(max_steps, step, seconds, percent):
    out = io.StringIO()
    progress = RunProgress(max_steps=max_steps, max_minutes=3, file=out)
    assert progress.bar.total == 100 and progress.bar.n == 0
    progress.update(step, seconds, bpc="1.5")
    assert progress.bar.n == pytest.approx(percent)
    progress.close()
    drawn = out.getvalue().strip().split("\r")[-1]  # tqdm redraws the line after \r
    budget = "3 min" + (f" or {max_steps} steps" if max_steps else "")
    assert f"{budget}: {percent:3.0f}%|" in drawn
    assert f"step={step}" in drawn and "bpc=1.5" in drawn
    assert "<" in drawn.split("|")[-1]  # elapsed<remaining


def test_a_resumed_run_starts_the_bar_where_it_was():
    progress = RunProgress(max_steps=0, max_minutes=2, step=50, seconds=60.0, file=io.StringIO())
    assert progress.bar.n == pytest.approx(50.0)
    progress.close()
