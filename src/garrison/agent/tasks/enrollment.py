"""Enrollment: ``POST /api/agents`` with the key; stores agent id and token (0600), and pins
the server's content keys and id (``content_keys``, ``server_id``) in the state dir.

Over https the server's CA is pinned first (``garrison.agent.trust``): given as
``--ca-sha256``, kept from an earlier enrollment, or, only with ``--trust-on-first-use``,
whatever the server presents.  Nothing is written before the enrollment succeeded over a
connection verified against that CA; then the agent asks for its client certificate."""

from __future__ import annotations

from garrison.agent import trust
from garrison.agent.content import keys
from garrison.agent.content.store import ContentStore
from garrison.agent.context import Agent
from garrison.agent.errors import AgentError, RefusedError, ServerError, UnreachableError
from garrison.agent.state import Credentials, write_private
from garrison.agent.transport import Identity, Transport


def _anchor(agent: Agent, url: str, ca_sha256: str | None, tofu: bool) -> tuple[str, str]:
    """(pin, CA PEM) to enroll with; ("", "") to rely on the system's CAs or plain HTTP."""
    pin = trust.normalize_pin(ca_sha256) if ca_sha256 else agent.config.server.ca_sha256
    if url.startswith("http://"):
        if ca_sha256:
            raise trust.TlsError(f"--ca-sha256 needs an https:// server URL, not {url}")
        trust.verify_for(agent.state, pin, url)  # a pin kept from before: a downgrade
        return "", ""
    if pin:
        return pin, trust.check_anchor(trust.fetch_anchor(url), pin, url)
    if tofu:
        pem = trust.fetch_anchor(url)
        pin = trust.pem_fingerprint(pem)
        agent.say(f"trusting on first use the server's CA, SHA-256 {pin}")
        return pin, pem
    return "", ""


def run(
    agent: Agent,
    key: str,
    ca_sha256: str | None = None,
    trust_on_first_use: bool = False,
    installation: dict[str, str] | None = None,
) -> Credentials:
    """``ca_sha256``: the CA to pin (else the one pinned before); ``installation``: sent by
    ``garrison-agent install`` (its ``id`` and ``sessionid``), so that the server records the
    installation (``agent_installation``)."""
    url = agent.server_url
    if not url:
        raise UnreachableError("no server URL: give -s URL")
    key = key.strip().upper()
    pin, anchor = _anchor(agent, url, ca_sha256, trust_on_first_use)
    verify = trust.context(anchor) if anchor else True
    with Transport(url, Identity(agent.uuid), verify=verify) as transport:
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
    if anchor:
        write_private(trust.ca_path(agent.state), anchor.encode())
    agent.config.server.ca_sha256 = pin
    agent.save_config()
    if url.startswith("https://") and creds.token:
        _client_certificate(agent, url, anchor, creds)
    return creds


def _client_certificate(agent: Agent, url: str, anchor: str, creds: Credentials) -> None:
    """Ask for the station's client certificate (mutual TLS).  A server that issues none
    (an older one) is no failure of the enrollment: the agent says so and goes on."""
    csr, store = trust.client_csr(agent.state)
    verify = trust.context(anchor) if anchor else True
    identity = Identity(agent.uuid, creds.agent_id, creds.token)
    try:
        with Transport(url, identity, verify=verify) as transport:
            answer = transport.request("POST", "tls/client-certificate", json_body={"csr": csr})
        certificate = answer.get("certificate") if isinstance(answer, dict) else None
        if not isinstance(certificate, str):
            raise ServerError("the server answered no client certificate")
        store(certificate)
    except AgentError as exc:
        agent.say(f"no client certificate: {exc.message}")
