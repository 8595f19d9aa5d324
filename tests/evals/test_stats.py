"""Intervals checked against distributions whose answer is known."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from turngym.evals.stats import (
    MetricSummary,
    macro_mean,
    mean_interval,
    standard_error,
    summarize_values,
    t_quantile,
    wilson_interval,
)


def coverage(draw, truth, reps=2000, seed=0):
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(reps):
        low, high = draw(rng)
        hits += low <= truth <= high
    return hits / reps


@pytest.mark.parametrize(("p", "n"), [(0.5, 100), (0.2, 200), (0.9, 50)])
def test_wilson_covers_a_bernoulli_mean_95_percent_of_the_time(p, n):
    cov = coverage(lambda rng: wilson_interval(int(rng.binomial(n, p)), n), p)
    assert 0.93 <= cov <= 0.975


@pytest.mark.parametrize("n", [5, 12, 40])
def test_t_interval_covers_a_normal_mean_95_percent_of_the_time(n):
    def draw(rng):
        x = rng.normal(3.0, 2.0, n)
        return mean_interval(float(x.mean()), float(x.std(ddof=1)), n)

    assert 0.935 <= coverage(draw, 3.0) <= 0.965


def test_t_quantiles_match_the_table_and_tend_to_the_normal():
    assert t_quantile(1) == 12.706 and t_quantile(30) == 2.042
    assert abs(t_quantile(31) - 2.040) < 2e-3  # expansion joins the table smoothly
    assert abs(t_quantile(60) - 2.000) < 2e-3 and abs(t_quantile(120) - 1.980) < 2e-3
    assert abs(t_quantile(10**6) - 1.96) < 1e-3
    with pytest.raises(ValueError):
        t_quantile(0)


@given(st.lists(st.floats(-100, 100), min_size=2, max_size=50))
def test_summaries_bracket_their_mean(values):
    s = summarize_values(values)
    assert s.ci95[0] <= s.mean + 1e-9 and s.mean <= s.ci95[1] + 1e-9
    assert s.n == len(values)


@given(st.lists(st.sampled_from([0.0, 1.0]), min_size=1, max_size=60))
def test_rates_use_wilson_inside_unit_interval(values):
    s = summarize_values(values)
    assert s.method == "wilson" and 0.0 <= s.ci95[0] <= s.ci95[1] <= 1.0


def test_standard_error_of_a_t_summary_is_std_over_root_n():
    s = summarize_values([1.0, 2.0, 4.0, 7.0])
    assert math.isclose(standard_error(s), s.std / 2)


def test_macro_mean_counts_each_env_once_and_keeps_width_at_the_extremes():
    perfect = summarize_values([1.0] * 100)  # std 0, but Wilson width > 0
    half = summarize_values([1.0, 0.0] * 50)
    m = macro_mean([perfect, half])
    assert m.mean == pytest.approx(0.75) and m.n == 200
    assert m.ci95[1] - m.ci95[0] > 0.05 and m.ci95[1] <= 1.0
    assert macro_mean([]).n == 0


def test_summary_round_trips_through_json():
    s = MetricSummary(0.5, 0.1, 9, (0.4, 0.6), "t")
    assert MetricSummary.from_dict(s.to_dict()) == s
