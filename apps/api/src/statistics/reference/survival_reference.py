"""Reference values for ../survival.ts, computed with statsmodels (an independent Kaplan-Meier and log-rank).

Regenerate from the repository root (Debian 12: `apt-get install -y python3-statsmodels`, statsmodels 0.13.5):

    /usr/bin/python3 apps/api/src/statistics/reference/survival_reference.py > apps/api/src/statistics/reference/survival-reference.json

The fixture cohorts are defined here and written into the JSON with the values, so the TypeScript test reads its
inputs from the same file and cannot drift from what was computed.

What statsmodels 0.13 offers and what is computed around it:
- SurvfuncRight gives surv_times, n_risk, n_events, surv_prob and surv_prob_se (Greenwood). It has no pointwise
  `conf_int` (only quantile_ci and the Hall-Wellner simultaneous band), so the log-log interval is built from
  surv_prob and surv_prob_se with the g-transform statsmodels itself uses for `quantile_ci(method="cloglog")`:
  g(S) = log(-log S), g'(S) = -1 / (S log S), interval g^-1(g(S) -/+ z g'(S) se(S)), g^-1(y) = exp(-exp(y)).
  Where S = 0 statsmodels sets se to NaN, and the interval is NaN too; both are written as null.
- The median is SurvfuncRight.quantile(0.5): the first event time with S < 0.5 (strict). R and SAS take the
  midpoint of the flat when S equals 0.5 exactly; where any S lies within sqrt(eps) of 0.5 the fixture is flagged
  `medianAtExactHalf` and the TypeScript test checks that case by hand instead.
- Censorings at each event time, censor-time multiplicities and numbers at risk at the marks are plain numpy
  counts (statsmodels reports none of them); survival at a mark is surv_prob at the last event time <= mark.
- survdiff returns only chi-square and p; observed minus expected for groups 1..k-1 and their covariance come
  from its helper `_survdiff` (the numbers survdiff uses). Expected for group 0 follows from sum(O - E) = 0.
"""

import json
import sys

import numpy as np
import scipy
import statsmodels
from scipy.stats import norm
from statsmodels.duration.survfunc import SurvfuncRight, _survdiff, survdiff

# sqrt(machine epsilon), the tolerance R's quantile.survfit (and survival.ts) uses for "S equals 0.5".
EXACT_HALF_TOLERANCE = float(np.sqrt(np.finfo(np.float64).eps))


def null_if_nan(values):
    return [None if not np.isfinite(v) else float(v) for v in values]


def kaplan_meier_reference(name, time, event, marks=None, confidence=0.95, note=""):
    time = np.asarray(time, dtype=np.float64)
    status = np.asarray(event, dtype=np.float64)
    marks = [] if marks is None else marks
    sf = SurvfuncRight(time, status)
    s = np.asarray(sf.surv_prob, dtype=np.float64)
    se = np.asarray(sf.surv_prob_se, dtype=np.float64)

    z = norm.ppf(1 - (1 - confidence) / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.log(-np.log(s))
        g_prime = -1 / (s * np.log(s))
        half_width = z * g_prime * se
        lower = np.exp(-np.exp(g + half_width))
        upper = np.exp(-np.exp(g - half_width))

    censored_time = time[status == 0]
    censored_at_step = [int(np.sum(censored_time == t)) for t in sf.surv_times]
    censor_values, censor_counts = np.unique(censored_time, return_counts=True)

    at_marks = []
    for mark in marks:
        index = np.searchsorted(sf.surv_times, mark, side="right") - 1
        at_marks.append({
            "time": float(mark),
            "atRisk": int(np.sum(time >= mark)),
            "survival": 1.0 if index < 0 else float(s[index]),
        })

    median = sf.quantile(0.5)
    return {
        "name": name,
        "note": note,
        "observations": [{"time": float(t), "event": bool(e)} for t, e in zip(time, status)],
        "marks": [float(m) for m in marks],
        "confidence": confidence,
        "expected": {
            "steps": [
                {
                    "time": float(sf.surv_times[i]),
                    "atRisk": int(sf.n_risk[i]),
                    "events": int(sf.n_events[i]),
                    "censored": censored_at_step[i],
                    "survival": float(s[i]),
                    "standardError": null_if_nan([se[i]])[0],
                    "lower": null_if_nan([lower[i]])[0],
                    "upper": null_if_nan([upper[i]])[0],
                }
                for i in range(len(sf.surv_times))
            ],
            "censorTimes": [{"time": float(t), "count": int(c)} for t, c in zip(censor_values, censor_counts)],
            "atMarks": at_marks,
            "median": None if not np.isfinite(median) else float(median),
            "medianAtExactHalf": bool(np.any(np.abs(s - 0.5) < EXACT_HALF_TOLERANCE)),
        },
    }


def log_rank_reference(name, groups, note=""):
    time = np.concatenate([np.asarray([o[0] for o in group], dtype=np.float64) for group in groups])
    status = np.concatenate([np.asarray([o[1] for o in group], dtype=np.float64) for group in groups])
    label = np.concatenate([np.full(len(group), index) for index, group in enumerate(groups)])
    chisq, pvalue = survdiff(time, status, label)
    o_minus_e, covariance = _survdiff(time, status, label, None, np.unique(label))
    observed = [float(np.sum(status[label == k])) for k in range(len(groups))]
    expected = [observed[0] + float(np.sum(o_minus_e))] + [observed[k] - float(o_minus_e[k - 1]) for k in range(1, len(groups))]
    return {
        "name": name,
        "note": note,
        "groups": [[{"time": float(t), "event": bool(e)} for t, e in group] for group in groups],
        "expected": {
            "observed": observed,
            "expected": expected,
            "covarianceWithoutFirstGroup": np.atleast_2d(covariance).tolist(),
            "statistic": float(chisq),
            "degreesOfFreedom": len(groups) - 1,
            "pValue": float(pvalue),
        },
    }


def realistic_cohort(seed, size):
    """Eyes followed in years, visits monthly: worsening (one or more ETDRS steps) is seen at the first visit
    after it happens, so times are whole months and ties are common, as in a screening programme.
    The hazard rises with baseline grade (0 none, 1 mild, 2 moderate NPDR); follow-up ends administratively
    at 0.5-8 years or at loss to follow-up."""
    rng = np.random.RandomState(seed)
    grade = rng.choice([0, 1, 2], size=size, p=[0.5, 0.3, 0.2])
    hazard_per_year = np.array([0.06, 0.14, 0.35])[grade]
    worsening = rng.exponential(1 / hazard_per_year)
    administrative = rng.uniform(0.5, 8.0, size=size)
    lost = rng.exponential(15.0, size=size)
    censoring = np.minimum(administrative, lost)
    event = worsening <= censoring
    months = np.ceil(np.minimum(worsening, censoring) * 12)
    time = months / 12
    return time, event, grade


def as_pairs(time, event):
    return [(float(t), bool(e)) for t, e in zip(time, event)]


def main():
    cohort_time, cohort_event, cohort_grade = realistic_cohort(20261201, 200)
    yearly = list(range(0, 9))

    kaplan_meier = [
        kaplan_meier_reference("hand example: 1 2 2+ 3 4+", [1, 2, 2, 3, 4], [1, 1, 0, 1, 0],
                               marks=[0, 1, 2, 2.5, 5]),
        kaplan_meier_reference("ties of events at one time", [1, 2, 2, 2, 3, 4, 4, 5, 6, 7],
                               [1, 1, 1, 1, 0, 1, 1, 0, 1, 0], marks=[0, 2, 4, 8]),
        kaplan_meier_reference("censoring at an event time", [1, 1, 1, 3, 3, 3, 3, 6, 6, 9],
                               [1, 0, 0, 1, 1, 0, 0, 1, 0, 0], marks=[0, 1, 3, 6, 9, 10]),
        kaplan_meier_reference("all censored", [0.5, 1, 1, 2.5, 4], [0, 0, 0, 0, 0], marks=[0, 1, 5]),
        kaplan_meier_reference("all events", [3, 1, 4, 1, 5, 9, 2, 6], [1] * 8, marks=[0, 2, 10]),
        kaplan_meier_reference("one patient, event", [2.25], [1], marks=[0, 2.25, 3]),
        kaplan_meier_reference("one patient, censored", [2.25], [0], marks=[0, 3]),
        kaplan_meier_reference("survival reaches 0 with a censoring before", [1, 2, 2, 3, 5], [1, 0, 1, 1, 1],
                               marks=[0, 4, 6]),
        kaplan_meier_reference("survival reaches 0 by a tie at the last time", [1, 2, 4, 4, 4], [1, 0, 1, 1, 1],
                               marks=[4]),
        kaplan_meier_reference("event at time 0", [0, 0, 1, 2, 2, 3], [1, 0, 1, 0, 1, 0], marks=[0, 1]),
        kaplan_meier_reference("90% interval", [1, 2, 2, 3, 4, 5, 5, 6], [1, 1, 0, 1, 0, 1, 1, 0],
                               confidence=0.90, marks=[0, 3]),
        kaplan_meier_reference("realistic cohort, 200 eyes, years", cohort_time, cohort_event, marks=yearly,
                               note="realistic_cohort(20261201, 200)"),
    ]
    for grade in (0, 1, 2):
        mask = cohort_grade == grade
        kaplan_meier.append(kaplan_meier_reference(f"realistic cohort, baseline grade {grade}", cohort_time[mask],
                                                   cohort_event[mask], marks=yearly))

    log_rank = [
        log_rank_reference("two groups, small", [[(1, True), (3, True), (4, False)], [(2, True), (2, True), (5, False)]]),
        log_rank_reference("two groups, ties across groups and censoring at event times",
                           [as_pairs([1, 1, 2, 3, 3, 4, 6], [1, 0, 1, 1, 0, 1, 0]),
                            as_pairs([1, 2, 2, 3, 5, 6, 6, 7], [1, 1, 0, 1, 1, 1, 0, 0])]),
        log_rank_reference("two groups, one reaches survival 0",
                           [as_pairs([1, 2, 3], [1, 1, 1]), as_pairs([1, 2, 3, 4, 5], [0, 1, 0, 0, 1])]),
        log_rank_reference("three groups, one-patient group and a group with no events",
                           [as_pairs([1, 2, 3, 4, 5, 6], [1, 1, 0, 1, 1, 0]),
                            as_pairs([3.5], [1]),
                            as_pairs([1, 2, 4, 6, 7], [0, 0, 0, 0, 0])]),
        log_rank_reference("two groups, realistic cohort grade 0 versus grades 1-2",
                           [as_pairs(cohort_time[cohort_grade == 0], cohort_event[cohort_grade == 0]),
                            as_pairs(cohort_time[cohort_grade > 0], cohort_event[cohort_grade > 0])]),
        log_rank_reference("three groups, realistic cohort by baseline grade",
                           [as_pairs(cohort_time[cohort_grade == g], cohort_event[cohort_grade == g]) for g in (0, 1, 2)]),
        log_rank_reference("three groups with the same hazard (large p)",
                           [as_pairs(cohort_time[(cohort_grade == 0) & (np.arange(200) % 3 == g)],
                                     cohort_event[(cohort_grade == 0) & (np.arange(200) % 3 == g)]) for g in (0, 1, 2)]),
    ]

    output = {
        "generatedBy": "/usr/bin/python3 apps/api/src/statistics/reference/survival_reference.py > apps/api/src/statistics/reference/survival-reference.json",
        "versions": {"statsmodels": statsmodels.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
                     "python": sys.version.split()[0]},
        "kaplanMeier": kaplan_meier,
        "logRank": log_rank,
    }
    json.dump(output, sys.stdout, indent=1, allow_nan=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
