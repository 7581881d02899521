"""``/api/tls/*``: the certificate agents pin, and a station's client certificate.

``GET /api/tls/ca`` needs no credential: an agent fetches it before it trusts the server
and checks its SHA-256 against the pin it was given (``--ca-sha256``), so what it reads
over the not-yet-verified connection is only ever trusted when it matches.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from garrison.server.agentapi import hotpath
from garrison.server.agentapi.routes import Endpoint, client_address, json_response
from garrison.server.context import ServerContext
from garrison.server.errors import InvalidInputError, NotFoundError
from garrison.server.tls import reports
from garrison.server.tls.authority import Authority
from garrison.server.tls.serving import anchor_pem, tls_dir


class TlsRoutes:
    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self._authority: Authority | None = None

    def routes(self) -> list[tuple[str, str, Endpoint]]:
        return [
            ("GET", "/api/tls/ca", self.ca),
            ("POST", "/api/tls/client-certificate", self.client_certificate),
        ]

    def _enabled(self) -> None:
        if not self.ctx.settings.tls:
            raise NotFoundError("this server serves plain HTTP (--tls off): it has no CA")

    def authority(self) -> Authority:
        if self._authority is None:
            self._authority = Authority.open(tls_dir(self.ctx.settings))[0]
        return self._authority

    async def ca(self, request: Request) -> Response:
        self._enabled()
        try:
            pem = await run_in_threadpool(anchor_pem, self.ctx.settings)
        except OSError:  # an app not started by garrison serve, which makes the CA
            raise NotFoundError("this server has no CA certificate yet") from None
        return Response(pem, media_type="application/x-pem-file")

    async def client_certificate(self, request: Request) -> Response:
        """Body ``{"csr": PEM}`` with the station's token; answers the certificate, signed by
        the server's CA for the station's uuid.  Any earlier one of the station's is revoked."""
        self._enabled()
        body = await request.body()
        try:
            data: Any = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise InvalidInputError("the body is not JSON") from None
        csr = data.get("csr") if isinstance(data, dict) else None
        if not isinstance(csr, str) or not csr:
            raise InvalidInputError("csr (a PEM certificate request) is required", field="csr")
        authorization = request.headers.get("authorization")
        address = client_address(request)
        lifetime = dt.timedelta(seconds=self.ctx.settings.tls_client_cert_lifetime_seconds)

        def issue() -> tuple[int, dict[str, Any]]:
            credential = self.ctx.agent_auth.authenticate(authorization, address)
            station_id, issued = reports.issue_client_certificate(
                self.ctx.db, credential, csr, self.authority(), lifetime
            )
            answer = {
                "certificate": issued.cert_pem,
                "serial": issued.serial,
                "not_after": issued.not_after.isoformat(),
                "required": self.ctx.settings.tls_client_certs,
            }
            return station_id, answer

        station_id, answer = await run_in_threadpool(issue)
        request.scope[hotpath.STATION_KEY] = station_id
        return json_response(answer)
