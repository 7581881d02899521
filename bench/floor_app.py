"""The HTTP floor: the same uvicorn + Starlette stack as ``garrison serve`` (uvloop,
httptools, no access log, no server header), answering a fixed JSON response with no
Garrison code.  Any request to the agent API can at best be this fast.

    python -m bench.floor_app --port 8081 [--workers N]

With ``--workers N``: N processes accepting on one socket (uvicorn's workers: spawned
processes sharing the listening socket, as ``garrison serve --workers N`` does).
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BODY = b'{"jobs":[]}'


async def jobs(request: Request) -> Response:
    return Response(BODY, media_type="application/json")


async def health(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


app = Starlette(
    routes=[Route("/api/jobs", jobs, methods=["GET"]), Route("/health", health, methods=["GET"])]
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    # The options garrison serve passes to uvicorn (garrison.cli.server.serve).
    uvicorn.run(
        "bench.floor_app:app" if args.workers > 1 else app,
        workers=args.workers if args.workers > 1 else None,
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        proxy_headers=True,
        server_header=False,
    )


if __name__ == "__main__":
    main()
