"""A static file server that adds a fixed latency per request, run as its own process by the read
benchmarks: ``python -m benchmarks._http_server ROOT LATENCY`` prints its port, then serves until
terminated."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any


def serve(root: str, latency: float) -> None:
    """Serves ``root`` with aiohttp (asyncio, sendfile): thousands of requests per second on one core,
    so the client is what is measured, not a server busy with its own GIL. Every GET (and HEAD) waits
    ``latency`` seconds first, as a distant server would."""
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


class ServerProcess:
    """The server in a child process (so it never competes with the client for its GIL); a context
    manager that stops it on exit."""

    def __init__(self, root: str, latency: float) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks._http_server", root, str(latency)],
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.strip().isdigit():
            self.close()
            raise RuntimeError(f"the HTTP server did not start (it printed {line!r})")
        self.base = f"http://127.0.0.1:{int(line)}"

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
    serve(sys.argv[1], float(sys.argv[2]))
