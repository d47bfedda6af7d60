"""A client-credentials token endpoint backed by the test issuer's key.

Stop-gap: `tests/support/issuer.py` parses the token request with `request.form()`, which needs
`python-multipart`, not installed in this workspace. This endpoint parses the urlencoded body
itself and answers exactly like the issuer (a `service` token for the requesting client), so
the consultations service still fetches its token over HTTP with ClientCredentialsTokenSource.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qs

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from comuna_devstack.ports import free_port, wait_for_tcp
from tests.support.issuer import TestIssuer


@contextmanager
def token_endpoint(issuer: TestIssuer) -> Iterator[str]:
    """Yields the token URL."""

    async def token(request: Request) -> JSONResponse:
        form = parse_qs((await request.body()).decode())
        if form.get("grant_type") != ["client_credentials"]:
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        client_id = form.get("client_id", ["service"])[0]
        access = issuer.token(roles=["service"], territories=["VE"], client_id=client_id,
                              subject=f"service-account-{client_id}")
        return JSONResponse({"access_token": access, "expires_in": 300, "token_type": "Bearer"})

    port = free_port()
    app = Starlette(routes=[Route("/token", token, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for_tcp("127.0.0.1", port, 10)
    try:
        yield f"http://127.0.0.1:{port}/token"
    finally:
        server.should_exit = True
        thread.join(10)
