"""A v2-write compatibility endpoint in front of InfluxDB 1.x (development/test tooling only).

Accepts ``POST /api/v2/write?bucket=DB&org=…&precision=ns|us|ms|s`` with line protocol (gzip
allowed) and forwards the identical lines to ``/write?db=DB&precision=n|u|ms|s`` of the 1.x
server; answers 204 like InfluxDB 2.x, or the upstream error as v2-style JSON
(``{"code": …, "message": …}``). ``/query``, ``/ping`` and ``/health`` are passed through, so
one base URL serves both the writer (influxdb-client) and InfluxQL reads.

It lives with the stack and is never in the production write path (docs/design.md §10).

Run: ``python -m gyeongbo.stack.influx_compat --port 18087 --upstream http://127.0.0.1:18086``
"""

from __future__ import annotations

import argparse
import gzip
import json

from aiohttp import ClientSession, web

_PRECISION = {"ns": "n", "us": "u", "ms": "ms", "s": "s"}


def make_app(upstream: str) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)

    async def on_startup(app: web.Application) -> None:
        app["session"] = ClientSession()

    async def on_cleanup(app: web.Application) -> None:
        await app["session"].close()

    async def v2_write(request: web.Request) -> web.Response:
        bucket = request.query.get("bucket")
        if not bucket:
            return _v2_error(400, "invalid", "bucket is required")
        precision = request.query.get("precision", "ns")
        if precision not in _PRECISION:
            return _v2_error(400, "invalid", f"precision {precision!r} is not one of ns/us/ms/s")
        body = await request.read()
        if request.headers.get("Content-Encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        params = {"db": bucket, "precision": _PRECISION[precision]}
        session: ClientSession = request.app["session"]
        async with session.post(f"{upstream}/write", params=params, data=body) as r:
            if r.status == 204:
                return web.Response(status=204)
            text = await r.text()
            try:
                message = json.loads(text).get("error", text)
            except ValueError:
                message = text
            code = {400: "invalid", 401: "unauthorized", 404: "not found"}.get(
                r.status, "internal error"
            )
            return _v2_error(r.status, code, message)

    async def passthrough(request: web.Request) -> web.Response:
        session: ClientSession = request.app["session"]
        body = await request.read()
        async with session.request(
            request.method,
            f"{upstream}{request.path}",
            params=request.query,
            data=body,
            headers={k: v for k, v in request.headers.items() if k.lower() == "content-type"},
        ) as r:
            return web.Response(
                status=r.status,
                body=await r.read(),
                content_type=r.content_type if r.status != 204 else None,
            )

    async def health(request: web.Request) -> web.Response:
        session: ClientSession = request.app["session"]
        try:
            async with session.get(f"{upstream}/ping") as r:
                ok = r.status == 204
        except OSError:
            ok = False
        return web.json_response(
            {"name": "influxdb-compat", "status": "pass" if ok else "fail"},
            status=200 if ok else 503,
        )

    app.router.add_post("/api/v2/write", v2_write)
    app.router.add_route("*", "/query", passthrough)
    app.router.add_route("*", "/ping", passthrough)
    app.router.add_get("/health", health)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


def _v2_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream", required=True, help="base URL of the InfluxDB 1.x server")
    args = ap.parse_args()
    web.run_app(
        make_app(args.upstream.rstrip("/")),
        host=args.host,
        port=args.port,
        print=None,
        access_log=None,
    )


if __name__ == "__main__":
    main()
