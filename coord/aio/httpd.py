"""A small HTTP/1.1 responder on asyncio streams, for /metrics and the AdminServer.

Why not http.server in a thread or aiohttp: the pages read state the event loop mutates, so they are
made in the loop, with no lock; aiohttp is not a dependency, and these endpoints need only GET/HEAD/
POST, Content-Length bodies and keep-alive. The handler is a function called in the loop:
handler(method, path, query, headers, body) -> (status, content type, body bytes, extra headers), or
an awaitable of that (a command that waits, such as taking a snapshot).
Bad requests get 400, oversized ones 413/431, and a handler's exception a 500: never a crash.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
from urllib.parse import parse_qsl, unquote, urlsplit

log = logging.getLogger("coord.http")

REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 413: "Payload Too Large", 429: "Too Many Requests",
           431: "Request Header Fields Too Large", 500: "Server Error", 503: "Service Unavailable"}
MAX_HEADER_BYTES = 16 * 1024
IDLE_TIMEOUT_S = 30.0   # admin.idleTimeout's default


class HttpServer:
    def __init__(self, handler, name: str, max_body: int = 64 << 20):
        self.handler = handler
        self.name = name
        self.max_body = max_body
        self.server: asyncio.base_events.Server | None = None
        self.writers: set = set()

    async def start(self, host: str, port: int) -> int:
        self.server = await asyncio.start_server(self._client, host=host or None, port=port,
                                                 reuse_address=True, limit=MAX_HEADER_BYTES)
        return self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for w in list(self.writers):
                w.close()
            try:
                await asyncio.wait_for(self.server.wait_closed(), 2)
            except (asyncio.TimeoutError, Exception):
                pass

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            pass
        except Exception:
            log.exception("%s: HTTP connection failed", self.name)
        finally:
            self.writers.discard(writer)
            writer.close()

    async def _one(self, reader, writer) -> bool:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_TIMEOUT_S)
        except asyncio.LimitOverrunError:
            self._send(writer, 431, "text/plain", b"header too large\n", {}, False, "GET")
            return False
        except asyncio.IncompleteReadError:
            return False
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            self._send(writer, 400, "text/plain", b"bad request line\n", {}, False, "GET")
            return False
        method, target, version = parts
        headers = {}
        for ln in lines[1:]:
            if ":" in ln:
                k, _, v = ln.partition(":")
                headers[k.strip().lower()] = v.strip()
        keep = headers.get("connection", "").lower() != "close" and version == "HTTP/1.1"
        body = b""
        try:
            n = int(headers.get("content-length", "0"))
        except ValueError:
            n = -1
        if n < 0 or n > self.max_body or "chunked" in headers.get("transfer-encoding", ""):
            self._send(writer, 413 if n > self.max_body else 400, "text/plain", b"bad body\n", {}, False, method)
            return False
        if n:
            body = await asyncio.wait_for(reader.readexactly(n), IDLE_TIMEOUT_S)
        url = urlsplit(target)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        try:
            res = self.handler(method, unquote(url.path), query, headers, body)
            if inspect.isawaitable(res):
                res = await res
            status, ctype, payload, extra = res
        except Exception as e:
            log.exception("%s: %s %s failed", self.name, method, target)
            status, ctype, payload, extra = 500, "text/plain", f"{type(e).__name__}: {e}\n".encode(), {}
        self._send(writer, status, ctype, payload, extra, keep, method)
        await writer.drain()
        return keep

    @staticmethod
    def _send(writer, status: int, ctype: str, payload: bytes, extra: dict, keep: bool, method: str) -> None:
        hdrs = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}", f"Content-Type: {ctype}",
                f"Content-Length: {len(payload)}", "Connection: " + ("keep-alive" if keep else "close")]
        hdrs += [f"{k}: {v}" for k, v in extra.items()]
        writer.write(("\r\n".join(hdrs) + "\r\n\r\n").encode("latin-1") + (b"" if method == "HEAD" else payload))
