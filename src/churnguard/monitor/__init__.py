"""Monitoring: has the data moved, how well is the model doing now, and how well did it do.

* :mod:`.drift`: drift of every feature and of the scores (PSI or Jensen–Shannon) with thresholds
  calibrated to the batch size by a bootstrap null, and Benjamini–Hochberg across features;
* :mod:`.estimate`: a label-free estimate of the churn rate and the ROC-AUC of a batch whose
  labels are not in yet, from the model's calibrated probabilities (with its limit: it cannot see
  a change in how behaviour maps to churn);
* :mod:`.realized`: realized ROC-AUC, calibration and lift of stored score runs once their horizon
  has passed, on customers no campaign treated and on control groups;
* :mod:`.performance`: the label alarm: the newest matured cohort's churn rate and ROC-AUC tested
  against what the model that scored it claimed, at a stated false-alarm rate;
* :mod:`.run`: :func:`run_monitor`, all of them over a store, as one :class:`MonitorReport`
  (``churnguard monitor``, ``GET /v1/monitor``, the dashboard's monitor page, the cycle);
* :mod:`.psi`: the fixed-bin PSI of the two newest scoring dates that the model-quality page shows.

docs/monitor.md explains the method and its figures.
"""

from churnguard.monitor.drift import FeatureDrift, Season, benjamini_hochberg, drift_test
from churnguard.monitor.estimate import LIMIT, Estimate, estimate, expected_auc
from churnguard.monitor.psi import (
    Drift,
    FeaturePsi,
    drift,
    events_mark,
    feature_drift,
    important_features,
    median,
    psi,
    scores_at,
    scoring_dates,
    stability,
)
from churnguard.monitor.performance import LabelCheck, label_check, label_test
from churnguard.monitor.realized import Cohort, matured_cohorts, scores_mark
from churnguard.monitor.run import SCORE, MonitorError, MonitorReport, Reference, run_monitor

__all__ = ["LIMIT", "SCORE", "Cohort", "Drift", "Estimate", "FeatureDrift", "FeaturePsi",
           "LabelCheck", "MonitorError", "MonitorReport", "Reference", "Season", "benjamini_hochberg",
           "drift", "drift_test", "estimate", "events_mark", "expected_auc", "feature_drift",
           "important_features", "label_check", "label_test", "matured_cohorts", "median", "psi",
           "run_monitor", "scores_at", "scores_mark", "scoring_dates", "stability"]
