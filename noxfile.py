"""Every job of the project, one session each: ``nox -s tests fast lint typecheck bench demo``.

``nox -s ci`` runs tests, lint and typecheck in one environment (what ``.ci/run`` calls).
"""

from __future__ import annotations

import nox

nox.options.sessions = ["ci"]
nox.options.reuse_existing_virtualenvs = True

DEV = ".[dev]"
PYTHON = "3.11"


def _tests(session: nox.Session) -> None:
    # One worker per core, a test file per worker at a time (its module's stack is started
    # once): the suite waits on processes and sockets far more than it computes.
    session.run("pytest", "--numprocesses=auto", "--dist=loadfile", *session.posargs)


def _lint(session: nox.Session) -> None:
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


def _typecheck(session: nox.Session) -> None:
    session.run("mypy")


@nox.session(python=PYTHON)
def ci(session: nox.Session) -> None:
    """Tests, lint and typecheck in one environment (what CI runs)."""
    session.install("-e", DEV)
    _lint(session)
    _typecheck(session)
    _tests(session)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole test suite (pass pytest arguments after ``--``)."""
    session.install("-e", DEV)
    _tests(session)


@nox.session(python=PYTHON)
def fast(session: nox.Session) -> None:
    """The tests not marked ``slow`` (pass pytest arguments after ``--``): under a minute."""
    session.install("-e", DEV)
    session.run("pytest", "-m", "not slow", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff")
    _lint(session)


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over src/ and tests/."""
    session.install("-e", DEV)
    _typecheck(session)


@nox.session(python=PYTHON)
def core(session: nox.Session) -> None:
    """The package imports and runs with its core dependencies only (no extras)."""
    session.install("-e", ".", "pytest", "pytest-asyncio", "pytest-timeout", "hypothesis")
    session.run(
        "python",
        "-c",
        "import aiofanout, aiofanout.targets, aiofanout.testing, aiofanout.local;"
        " print(aiofanout.__version__)",
    )
    session.run(
        "pytest", "tests/test_engine.py", "tests/test_wire.py", "tests/test_worker_tasks.py"
    )


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Run the benchmarks and rewrite the tables in benchmarks/README.md."""
    session.install("-e", DEV)
    for name in session.posargs or ["engine", "worker", "aws", "local", "journal"]:
        session.run("python", f"benchmarks/{name}.py", "--write")


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """The README's demo: the embedded stack, the example worker and orchestrator."""
    session.install("-e", ".[local]")
    session.run("python", "-m", "aiofanout", "demo", *session.posargs)
