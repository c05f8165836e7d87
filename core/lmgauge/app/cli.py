"""``lmgauge serve [DIR ...]``: one live app for every run folder under DIR (default ``runs``)."""
from __future__ import annotations

import asyncio
import errno
import signal
import sys
from pathlib import Path

import click

from ..errors import ConfigError, LmgaugeError

DEFAULT_PORT = 7860


@click.command("serve")
@click.argument("dirs", nargs=-1, metavar="[DIR ...]")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Any host other than loopback needs a token (one is made if --token is not given).")
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True,
              help="Port to listen on (0: any free one).")
@click.option("--token", default=None, help="Token every request must carry (?token=T, then a cookie). "
                                           "Optional on loopback; made up and printed on other hosts.")
@click.option("--allow-host", "allow_host", multiple=True, metavar="NAME",
              help="Also answer for this Host header (a reverse proxy's name; repeatable; * for any).")
def serve(dirs: tuple[str, ...], host: str, port: int, token: str | None, allow_host: tuple[str, ...]) -> None:
    """Browse every eval, perf, regrade and sweep run under DIR (default: runs), live.

    \b
    lmgauge serve runs                        http://127.0.0.1:7860/
    lmgauge serve runs other/runs --port 8080 several folders
    lmgauge serve runs --host 0.0.0.0         reachable from other machines, with a token

    Runs still going update within a second or two; folders made later appear by themselves.
    Nothing is ever written into a run folder. The JSON API is documented in docs/app.md.
    """
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        raise LmgaugeError("lmgauge serve needs aiohttp, which is not installed",
                           "pip install aiohttp (it comes with lmgauge-backends)") from None
    folders = list(dirs) or ["runs"]
    for d in folders:
        p = Path(d)
        if not p.exists():
            raise ConfigError(f"no folder {d!r} to serve", "pass the folder your runs are written to, e.g. lmgauge serve runs")
        if not p.is_dir():
            raise ConfigError(f"{d!r} is not a folder", "pass the folder that holds the run folders")
    if token is not None and not token.strip():
        raise ConfigError("--token is empty", "pass a token, or leave --token out on loopback")
    from .security import is_loopback, new_token

    if token is None and not is_loopback(host):
        token = new_token()
    try:
        asyncio.run(_serve(folders, host, port, token, list(allow_host)))
    except KeyboardInterrupt:
        pass


async def _serve(folders: list[str], host: str, port: int, token: str | None, allow_host: list[str]) -> None:
    from aiohttp import web

    from .security import Guard
    from .server import App, limit_arenas

    limit_arenas()
    guard = Guard(host, port, token, allow_host)
    app = App(folders, guard)
    runner = web.AppRunner(app.application(), access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        why = "the port is in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
        raise ConfigError(f"cannot listen on {host}:{port}: {why}", "pass another --port (or --port 0 for any free one)") from None
    server = getattr(site, "_server", None)
    sockets = getattr(server, "sockets", None) or []
    actual = sockets[0].getsockname()[1] if sockets else port
    guard.cookie = f"lmgauge_token_{actual}"
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    sys.stdout.write(f"lmgauge serve: http://{shown}:{actual}/" + (f"?token={token}" if token else "") + "\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
