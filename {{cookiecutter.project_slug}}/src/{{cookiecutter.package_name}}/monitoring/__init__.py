"""Monitoring: production windows against the training reference, service health, reports.

:mod:`.monitor` compares a window (:mod:`.window`) column by column (:mod:`.columns`) and with
late labels (:mod:`.labels`); :mod:`.health` reads the service's metrics; :mod:`.dashboards`
draws what people read; :mod:`.replay` sends simulated traffic for demos and tests.
"""
