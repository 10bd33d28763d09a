"""An MCP test server (the official Python MCP SDK, streamable HTTP) that requires a bearer
token, with an OAuth token endpoint beside it; run as a child process by test_mcp.py and the
MCP benchmark.

    python mcp_test_server.py --host 127.0.0.2 --cert leaf.pem --key leaf.key [--tools N]

prints `listening on <port>` once it serves HTTPS (plain HTTP without `--cert`). Paths:

- `/mcp`: the MCP endpoint. Every request must carry `Authorization: Bearer <t>` with `t` one
  of the accepted tokens, else `401` with a `WWW-Authenticate: Bearer` challenge. Tools:
  `echo {text}` (answers `echo: <text>`), `add {a, b}` (answers the sum), and with `--tools N`
  also `tool_0` … `tool_{N-1}` (each with its own small schema).
- `/token`: an OAuth token endpoint (`grant_type=refresh_token`): when the form's
  `refresh_token` is the current one, issues a new access token (accepted from then on, valid
  an hour) and a new refresh token.
- `/_test/state` (GET): what was received, as JSON: `authorizations` (of `/mcp` requests),
  `token_calls` (the token endpoint's forms), `calls` (tool calls: name and arguments),
  `methods` (the JSON-RPC methods of accepted `/mcp` requests), `issued` (tokens the endpoint
  issued).
- `/_test/config` (POST JSON): `{"tokens": [...], "refresh_token": "..."}` sets the accepted
  access tokens and the current refresh token.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import threading
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from mcp.server.fastmcp import FastMCP
from mcp.server.transport_security import TransportSecuritySettings


class State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tokens: set[str] = set()
        self.refresh_token = ""
        self.authorizations: list[str | None] = []
        self.token_calls: list[dict[str, list[str]]] = []
        self.calls: list[dict[str, Any]] = []
        self.methods: list[str] = []
        self.issued: list[str] = []

    def dump(self) -> dict[str, Any]:
        with self.lock:
            return {
                "authorizations": list(self.authorizations),
                "token_calls": list(self.token_calls),
                "calls": list(self.calls),
                "methods": list(self.methods),
                "issued": list(self.issued),
            }


STATE = State()


def build_mcp(extra_tools: int) -> FastMCP:
    mcp = FastMCP(
        "managed-agents-test",
        stateless_http=True,
        json_response=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )

    @mcp.tool(description="Echoes its text back.")
    def echo(text: str) -> str:
        with STATE.lock:
            STATE.calls.append({"name": "echo", "arguments": {"text": text}})
        return f"echo: {text}"

    @mcp.tool(description="Adds two integers.")
    def add(a: int, b: int) -> str:
        with STATE.lock:
            STATE.calls.append({"name": "add", "arguments": {"a": a, "b": b}})
        return str(a + b)

    for i in range(extra_tools):

        def numbered(value: str, i: int = i) -> str:
            return f"tool_{i}: {value}"

        mcp.add_tool(numbered, name=f"tool_{i}", description=f"Numbered test tool {i}.")
    return mcp


async def read_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def answer(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())] + (
        headers or []
    )
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def wrap(app: Any) -> Any:
    """Bearer check on `/mcp`, and the token and test endpoints."""

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        path = scope["path"]
        if path == "/_test/state":
            await answer(send, 200, json.dumps(STATE.dump()).encode())
            return
        if path == "/_test/config":
            config = json.loads(await read_body(receive) or b"{}")
            with STATE.lock:
                STATE.tokens = set(config.get("tokens", []))
                STATE.refresh_token = config.get("refresh_token", "")
            await answer(send, 200, b"{}")
            return
        if path == "/token":
            form = parse_qs((await read_body(receive)).decode())
            with STATE.lock:
                STATE.token_calls.append(form)
                if form.get("grant_type") != ["refresh_token"] or form.get("refresh_token") != [
                    STATE.refresh_token
                ]:
                    body = json.dumps({"error": "invalid_grant"}).encode()
                    status = 400
                else:
                    access = "issued-access-" + secrets.token_hex(8)
                    STATE.refresh_token = "issued-refresh-" + secrets.token_hex(8)
                    STATE.tokens.add(access)
                    STATE.issued += [access, STATE.refresh_token]
                    body = json.dumps(
                        {
                            "access_token": access,
                            "token_type": "Bearer",
                            "expires_in": 3600,
                            "refresh_token": STATE.refresh_token,
                        }
                    ).encode()
                    status = 200
            await answer(send, status, body)
            return
        if path.startswith("/mcp"):
            headers = dict(scope["headers"])
            authorization = headers.get(b"authorization")
            value = authorization.decode() if authorization else None
            with STATE.lock:
                STATE.authorizations.append(value)
                ok = value is not None and value.startswith("Bearer ") and value[7:] in STATE.tokens
            if not ok:
                await answer(
                    send,
                    401,
                    json.dumps({"error": "invalid_token"}).encode(),
                    [(b"www-authenticate", b'Bearer error="invalid_token"')],
                )
                return
            body = await read_body(receive)
            try:
                method = json.loads(body).get("method")
            except (ValueError, AttributeError):
                method = None
            if method:
                with STATE.lock:
                    STATE.methods.append(method)
            replayed = False

            async def replay() -> dict[str, Any]:
                nonlocal replayed
                if replayed:
                    return await receive()
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}

            await app(scope, replay, send)
            return
        await app(scope, receive, send)

    return asgi


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.2")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--tools", type=int, default=0)
    args = parser.parse_args()
    app = wrap(build_mcp(args.tools).streamable_http_app())
    config = uvicorn.Config(
        app,
        host=args.host,
        port=0,
        ssl_certfile=args.cert,
        ssl_keyfile=args.key,
        log_level="warning",
        lifespan="on",
    )
    server = uvicorn.Server(config)

    async def serve() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                task.result()
                return
            await asyncio.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        print(f"listening on {port}", flush=True)
        await task

    asyncio.run(serve())
    sys.exit(0)


if __name__ == "__main__":
    main()
