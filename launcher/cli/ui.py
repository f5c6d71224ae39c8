"""`launch ui`: the console and the API on 127.0.0.1, the way Jupyter starts (launcher.console.server)."""

import os
import sys

import typer


def ui(
    port: int = typer.Option(8765, "--port", help="The port (0: any free one; ui.json names it)."),
    host: str = typer.Option("127.0.0.1", "--host", help="The address to listen on; anything but loopback is warned."),
    no_browser: bool = typer.Option(False, "--no-browser", help="Do not open a browser; the URL is printed."),
) -> None:
    """Serve the console (secrets, templates, jobs) and the API, with a token per start (or $LAUNCH_UI_TOKEN)."""
    from launcher.errors import UsageError

    if not 0 <= port <= 65535:
        raise UsageError(f"--port: {port} is not a port (0 to 65535)")
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.stderr.write(
            f"launch: warning: --host {host}: the console holds the keys to every secret; anyone who can reach "
            "this address and learns the token can use them\n"
        )
    token = os.environ.get("LAUNCH_UI_TOKEN") or None
    if token is not None and len(token) < 16:
        raise UsageError("LAUNCH_UI_TOKEN: use at least 16 characters")
    from launcher.console.server import serve

    serve(host=host, port=port, open_browser=not no_browser, token=token)


def register(app: typer.Typer) -> None:
    app.command("ui")(ui)
