"""socp: a Secure Overlay Chat Protocol v1.3 node and client."""

__version__ = "0.1.0"
