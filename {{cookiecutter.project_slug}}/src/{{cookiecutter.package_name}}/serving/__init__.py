"""Serving: the BentoML service, its settings, and packaging as a bento and image.

:mod:`.service` answers requests through the request :mod:`.schema`, :mod:`.scoring`, the
micro-batcher (:mod:`.batching`) and the traffic profiler (:mod:`.traffic`); :mod:`.settings`
maps the project config to the service; :mod:`.packaging` builds the bento and the image.
"""
