"""A static file server that adds a fixed latency per request, run as its own process by the read
benchmarks: ``python -m benchmarks._http_server ROOT LATENCY [KIND]`` prints its port, then serves
until terminated.

Two kinds:

  lean     (default) HTTP/1.1 on a bare asyncio protocol, bodies held in memory: ~40 us of CPU per
           100 KB response, so the machine's cores go to the client, as they would if the server
           were remote.
  aiohttp  aiohttp's ``FileResponse`` (sendfile): a full framework, ~0.45 ms of CPU per 100 KB
           response. On a 2-core machine it uses about one core while a fast client runs, and the
           benchmark then measures the server (kept to reproduce the earlier numbers).

Both wait ``latency`` seconds before answering each GET (and HEAD), as a distant server would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

KINDS = ("lean", "aiohttp")


def _serve_aiohttp(root: str, latency: float) -> None:
    import asyncio

    from aiohttp import web

    async def handle(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(latency)
        path = os.path.join(root, os.path.basename(request.match_info["name"]))
        if not os.path.isfile(path):
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/{name}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port = runner.addresses[0][1]
        print(port, flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def _serve_lean(root: str, latency: float) -> None:
    """GET and HEAD of ``/<name>`` for the files directly in ``root`` (read once, on first request),
    keep-alive unless the client asks to close; anything else is answered 404 or 405. Requests on one
    connection are answered in order (pipelining is allowed, but clients here do not pipeline)."""
    import asyncio

    bodies: dict[str, bytes | None] = {}

    def body_of(name: str) -> bytes | None:
        if name not in bodies:
            path = os.path.join(root, os.path.basename(name))
            try:
                with open(path, "rb") as f:
                    bodies[name] = f.read()
            except OSError:
                bodies[name] = None
        return bodies[name]

    def response(status: str, body: bytes, head_only: bool, close: bool) -> bytes:
        head = (f"HTTP/1.1 {status}\r\nContent-Type: application/octet-stream\r\nContent-Length: {len(body)}\r\n"
                f"{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n").encode()
        return head if head_only else head + body

    class Conn(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport, self.buffer = transport, b""

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while b"\r\n\r\n" in self.buffer:
                request, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
                lines = request.decode("latin-1").split("\r\n")
                method, target, _ = (lines[0].split(" ") + ["", "", ""])[:3]
                close = any(h.lower().replace(" ", "") == "connection:close" for h in lines[1:])
                name = target.split("?", 1)[0].rsplit("/", 1)[-1]
                if method not in ("GET", "HEAD"):
                    out = response("405 Method Not Allowed", b"", False, close)
                else:
                    body = body_of(name) if name else None
                    out = response("404 Not Found", b"", False, close) if body is None else \
                        response("200 OK", body, method == "HEAD", close)
                asyncio.get_running_loop().call_later(latency, self.answer, out, close)

        def answer(self, out: bytes, close: bool) -> None:
            if self.transport.is_closing():
                return
            self.transport.write(out)
            if close:
                self.transport.close()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Conn, "127.0.0.1", 0, backlog=1024)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(main())


def serve(root: str, latency: float, kind: str = "lean") -> None:
    if kind not in KINDS:
        raise SystemExit(f"unknown server kind {kind!r}; one of {', '.join(KINDS)}")
    (_serve_lean if kind == "lean" else _serve_aiohttp)(root, latency)


class ServerProcess:
    """The server in a child process (so it never competes with the client for its GIL); a context
    manager that stops it on exit."""

    def __init__(self, root: str, latency: float, kind: str = "lean") -> None:
        self.kind = kind
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks._http_server", root, str(latency), kind],
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.strip().isdigit():
            self.close()
            raise RuntimeError(f"the HTTP server did not start (it printed {line!r})")
        self.base = f"http://127.0.0.1:{int(line)}"

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server process has used so far (Linux; 0.0 elsewhere)."""
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return 0.0

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


if __name__ == "__main__":
    serve(sys.argv[1], float(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "lean")
