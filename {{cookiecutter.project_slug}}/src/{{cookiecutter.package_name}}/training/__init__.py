"""Training: features, fitting and registering, selection of a candidate, batch scoring.

:mod:`.preprocessing` builds the feature pipeline, :mod:`.train` fits, evaluates, logs and
registers it, :mod:`.selection` holds the candidate against the champion, :mod:`.inference`
scores a file with a registered model.
"""
