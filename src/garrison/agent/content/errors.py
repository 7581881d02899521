"""Why an update did not happen.

``ContentRefused``: this manifest will never be installed as it is (bad signature, another
server, an older serial, a file whose bytes do not match the signed hash, an engine that does
not load or exceeds its budget): the agent does not try the same manifest again at each
check-in (an UpdateSignatures job does).  ``ContentDeferred``: something that may pass
(the server away, a truncated download, the disk full): tried again at the next check-in.
"""

from __future__ import annotations

from garrison.agent.errors import AgentError, ExitCode


class ContentError(AgentError):
    exit_code = ExitCode.LOCAL_ERROR
    permanent = True


class ContentRefused(ContentError):
    permanent = True


class ContentDeferred(ContentError):
    permanent = False
