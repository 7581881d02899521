"""TLS: the server's CA and certificates (``authority``), the listening context and its
renewal (``serving``), and the per-station client certificates of mutual TLS (``models``,
``service``, ``reports``).  See docs/security.md "Transport"."""
