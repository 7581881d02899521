"""Enrollment: ``POST /api/agents`` with the key; stores agent id and token (0600), and pins
the server's content keys and id (``content_keys``, ``server_id``) in the state dir."""

from __future__ import annotations

from garrison.agent.content import keys
from garrison.agent.content.store import ContentStore
from garrison.agent.context import Agent
from garrison.agent.errors import RefusedError, ServerError, UnreachableError
from garrison.agent.state import Credentials
from garrison.agent.transport import Identity, Transport


def run(agent: Agent, key: str, installation: dict[str, str] | None = None) -> Credentials:
    """``installation``: sent by ``garrison-agent install`` (its ``id`` and ``sessionid``),
    so that the server records the installation (``agent_installation``)."""
    url = agent.server_url
    if not url:
        raise UnreachableError("no server URL: give -s URL")
    key = key.strip().upper()
    with Transport(url, Identity(agent.uuid)) as transport:
        try:
            obj: dict[str, object] = {"key": key}
            if installation is not None:
                obj["installation"] = installation
            answer = transport.post_task("agents", "Enrollment", obj)
        except RefusedError as exc:
            raise RefusedError(
                f"enrollment refused: {exc.message.split(': ', 1)[-1]}", exc.status
            ) from None
    try:
        agent_id = int(answer.get("agent_id", 0)) if isinstance(answer, dict) else 0
    except (TypeError, ValueError):
        agent_id = 0
    if agent_id <= 0:
        raise ServerError(f"enrollment: the server answered no agent_id: {str(answer)[:200]}")
    token = answer.get("agent_token") or ""
    creds = Credentials(
        agent_id=agent_id,
        token=str(token),
        server_url=url,
        scheduler_id=int(answer.get("scheduler_id") or 0),
    )
    agent.state.save_credentials(creds)
    # The content keys the server signs with: pinned now, the root of the agent's trust.
    if keys.pin_from_enrollment(agent.state, answer):
        ContentStore(agent.state).clear_failure()  # what was refused may verify now
    agent.config.server.url = url
    agent.save_config()
    return creds
