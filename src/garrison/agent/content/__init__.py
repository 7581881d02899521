"""Signed content from the server (issue 15; the wire contract is CONTENT-WIRE.md).

- ``wire``: the manifest and envelope shapes, ``canonical()``, key ids;
- ``keys``: the content keys this agent trusts (pinned at enrollment, extended only by
  rotation statements signed by a key it already trusts; an expired key is refused);
- ``verify``: a signed envelope checked against the trusted keys, the server id and the
  installed serial;
- ``download``: files fetched with resume (``Range``) and line deltas applied and checked
  against the signed hash;
- ``store``: the content directory (one directory per installed serial, a ``current``
  symlink swapped atomically), what was refused;
- ``budget``: YARA rules compiled and tried in a child process bounded in time and memory;
- ``sync``: the update itself, run at each check-in and by UpdateSignatures.
"""
