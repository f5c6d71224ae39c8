"""The floor of any Typer CLI's start-up: a hello-world app, the baseline `bench/run.py` compares `launch` with.

It is built like `launch` (one `typer.Typer()`, completion off) and does nothing else, so its run time is
the interpreter plus Typer: what no Typer CLI on this machine can start faster than.
"""

import typer

app = typer.Typer(add_completion=False)


@app.command()
def hello(name: str = "world") -> None:
    """Say hello."""
    print(f"hello {name}")


if __name__ == "__main__":
    app()
