"""The self-contained HTML report: backtest, scores, segments and interventions on one page that
opens offline.

>>> from churnguard.report import ReportData, render_report  # doctest: +SKIP
>>> render_report(data, "report.html")                       # doctest: +SKIP
PosixPath('report.html')
"""

from churnguard.report.data import ReportData
from churnguard.report.html import render_report

__all__ = ["ReportData", "render_report"]
