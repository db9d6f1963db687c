"""Deployment: desired state files, the local HAProxy blue/green target, Kubernetes manifests.

``deploy/<environment>.yaml`` says what should run; :mod:`.local` makes the machine match it,
:mod:`.router` moves traffic through HAProxy's runtime API, :mod:`.kubernetes` checks the
generated manifests against the same files.
"""
