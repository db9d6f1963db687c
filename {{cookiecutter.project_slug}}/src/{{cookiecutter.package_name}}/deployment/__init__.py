"""Deployment: desired state, its targets, the checks and the promotion that reconciles them.

``deploy/<environment>.yaml`` says what should run (:mod:`.state`); :mod:`.local` makes the
machine match it and :mod:`.router` moves traffic through HAProxy's runtime API; :mod:`.kubernetes`
keeps the overlays in step and checks the manifests. :mod:`.checks` gates a color,
:mod:`.promotion` switches to it and :mod:`.watch` watches it afterwards; :mod:`.load` drives
wrk for the checks and benchmarks, :mod:`.loopback` holds ports and process trees. :mod:`.cli` is
the ``deploy`` command every deployment nox session calls.
"""
