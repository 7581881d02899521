"""Signed content (issue 15): the repository of rule sets and their versions, their
assignment to station groups, the server-wide serial, the Ed25519 content key, and the
signed manifest each Garrison agent fetches (``CONTENT-WIRE.md``, ``docs/content.md``)."""
