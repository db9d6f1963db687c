"""HTTP headers the router and the service agree on: one place, read by both layers."""

CLIENT_HEADER = "X-Client"
"""Who sent a request: set by the router's front door from the caller's key (``anonymous`` while
access is open, ``operator`` on the preview door); the service files each profiled row under it."""

DIRECT = "direct"
"""The client of a request that reached a color without passing the router (no ``X-Client``)."""
