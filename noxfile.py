"""Sessions: ``nox -s tests lint typecheck`` (the README's test command), ``tests_redis``
and ``bench``."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests", "lint", "typecheck"]

PYPROJECT = nox.project.load_toml("pyproject.toml")


def _group(name: str) -> list[str]:
    return list(nox.project.dependency_groups(PYPROJECT, name))


PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The test suite, against the package as installed (its pytest plugin included).

    On every supported Python; the real-Redis tests have a session of their own because
    they need a redis-server binary.
    """
    session.install(".[redis]", *_group("test"))
    session.run("pytest", "--ignore=tests/redis_server", *session.posargs)


@nox.session
def tests_redis(session: nox.Session) -> None:
    """The Redis-shared limiter against a real redis-server (binary on PATH)."""
    session.install(".[redis]", *_group("test"))
    session.run("pytest", "tests/redis_server", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint rules and formatting."""
    session.install(*_group("lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the library."""
    session.install(".", *_group("typecheck"))
    session.run("mypy", "--strict", "src")


@nox.session
def bench(session: nox.Session) -> None:
    """Every benchmark, then the README's performance table (``-- --quick``: smoke run)."""
    session.install(".[bench,redis]", *_group("bench"))
    for script in ("limit_accuracy", "overhead", "scale", "multiprocess_limit", "user_bench"):
        session.run("python", f"benchmarks/{script}.py", *session.posargs)
    if "--quick" not in session.posargs:
        session.run("python", "benchmarks/report.py")
