"""The web console (issue 18): server-rendered pages at ``/``, an edge like the admin API
that calls the same use cases (``garrison.server.*.actions`` and services) and validates
forms with the admin API's own input schemas, so that a rule and its message exist once.
See docs/console.md."""
