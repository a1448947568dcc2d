#!/usr/bin/env python3
"""The references of qiao-analysis' tests: lifelines (KaplanMeierFitter, logrank_test, CoxPHFitter) and
statsmodels (Logit, GLM Binomial) on the inputs a test hands over.

usage: reference_fits.py REQUEST.json RESULT.json

REQUEST: {"km": {NAME: {"time": [...], "event": [...]}}, "at_risk_times": [...],
          "logrank": [[NAME_A, NAME_B], ...],
          "cox": {NAME: {"columns": {COL: [...]}, "time": [...], "event": [...], "strata": [...] | null}},
          "logit": {NAME: {"columns": {COL: [...]}, "y": [...]}}}
RESULT: per KM: the event table with survival, Greenwood std. error, the 95% interval, the median with its
interval (None = inf: never reached) and the at-risk table as lifelines' add_at_risk_counts computes it;
per log-rank pair: chi2, df, p; per fit: beta, se, z, p, lower, upper by coefficient, and the log-likelihood.
"""
import json
import math
import sys
import warnings

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.statistics import logrank_test
from lifelines.utils import median_survival_times
import statsmodels.api as sm

warnings.simplefilter('ignore')


def finite(x):
    x = float(x)
    return x if math.isfinite(x) else None


def km(spec, at_risk_times):
    k = KaplanMeierFitter().fit(spec['time'], event_observed=spec['event'])
    et = k.event_table
    sf = k.survival_function_.iloc[:, 0]
    ci = k.confidence_interval_survival_function_
    med_ci = median_survival_times(k.confidence_interval_)
    # lifelines add_at_risk_counts (at_risk_count_from_start_of_period=False)
    table = []
    for t in at_risk_times:
        s = et.assign(at_risk=lambda x: x.at_risk - x.removed).loc[:t]
        table.append({'time': t, 'at_risk': int(s['at_risk'].iloc[-1]), 'events': int(s['observed'].sum()),
                      'censored': int(s['censored'].sum())})
    return {
        'time': [float(t) for t in et.index],
        'at_risk': [int(v) for v in et['at_risk']],
        'events': [int(v) for v in et['observed']],
        'censored': [int(v) for v in et['censored']],
        'survival': [float(v) for v in sf],
        'std_err': [float(s * math.sqrt(v)) for s, v in zip(sf, k._cumulative_sq_)],
        'lower': [float(v) for v in ci.iloc[:, 0]],
        'upper': [float(v) for v in ci.iloc[:, 1]],
        'median': {'time': finite(k.median_survival_time_), 'lower': finite(med_ci.iloc[0, 0]),
                   'upper': finite(med_ci.iloc[0, 1])},
        'at_risk_table': table,
    }


def coefficients(names, params, se, z, p, lower, upper):
    return {n: {'beta': float(params[n]), 'se': float(se[n]), 'z': float(z[n]), 'p': float(p[n]),
                'lower': float(lower[n]), 'upper': float(upper[n])} for n in names}


def cox(spec):
    df = pd.DataFrame(spec['columns'])
    names = list(df.columns)
    df['T'] = spec['time']
    df['E'] = [int(e) for e in spec['event']]
    strata = None
    if spec.get('strata') is not None:
        df['site'] = spec['strata']
        strata = ['site']
    f = CoxPHFitter().fit(df, 'T', 'E', strata=strata, fit_options={'precision': 1e-12, 'max_steps': 200})
    s = f.summary
    return {'coefficients': coefficients(names, s['coef'], s['se(coef)'], s['z'], s['p'], s['coef lower 95%'],
                                         s['coef upper 95%']), 'loglik': float(f.log_likelihood_)}


def logit(spec):
    x = pd.DataFrame(spec['columns'])
    x.insert(0, '(intercept)', 1.0)
    y = np.asarray(spec['y'], dtype=float)
    r = sm.Logit(y, x).fit(disp=0, method='newton', maxiter=200, tol=1e-12)
    ci = r.conf_int(0.05)
    g = sm.GLM(y, x, family=sm.families.Binomial()).fit(tol=1e-12, maxiter=200)
    names = list(x.columns)
    return {'coefficients': coefficients(names, r.params, r.bse, r.tvalues, r.pvalues, ci[0], ci[1]),
            'loglik': float(r.llf), 'glm_max_abs_diff_beta': float(np.max(np.abs(g.params - r.params))),
            'glm_max_abs_diff_se': float(np.max(np.abs(g.bse - r.bse)))}


def main():
    req = json.load(open(sys.argv[1]))
    times = req.get('at_risk_times', [0])
    out = {'km': {n: km(s, times) for n, s in req.get('km', {}).items()}, 'logrank': []}
    for a, b in req.get('logrank', []):
        A, B = req['km'][a], req['km'][b]
        r = logrank_test(A['time'], B['time'], event_observed_A=A['event'], event_observed_B=B['event'])
        out['logrank'].append({'chi2': float(r.test_statistic), 'df': int(r.degrees_of_freedom), 'p': float(r.p_value)})
    out['cox'] = {n: cox(s) for n, s in req.get('cox', {}).items()}
    out['logit'] = {n: logit(s) for n, s in req.get('logit', {}).items()}
    json.dump(out, open(sys.argv[2], 'w'))


if __name__ == '__main__':
    main()
