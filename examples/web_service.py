"""A production-shaped FastAPI service: interactive calls, a readiness probe, background
bulk jobs and the robots' callbacks, all on one ``TencentChat``.

- ``POST /rooms/{room_id}/robots/{robot}`` puts a robot in a room while the user waits:
  a bounded call (``max_wait``, ``timeout``, ``deadline``) whose failures become HTTP
  answers (503 try again, 422 bad input, 502 Tencent said no, with its code). Robot ids
  start with ``@RBT#``: percent-encode them in the path (``%40RBT%23001``).
- ``GET /ready`` is the readiness probe: ``chat.health()`` (no request to Tencent) and
  the callback receiver's load; 200 when both can serve, else 503.
- ``POST /jobs/provision`` (``{"robot": "@RBT#001", "rooms": ["room-1", ...]}``) starts
  a ``chat.bulk`` run in the background and answers 202 at once; ``GET /jobs/{id}``
  shows its progress. At shutdown running jobs are stopped (calls on the wire finish,
  the rest is reported not done) before the client is closed.
- ``POST /tencent/callback`` receives the robots' callbacks and answers as the robot.

The client is made in the lifespan and closed at shutdown; routes get it through a
dependency. Run it against Tencent (from a clone: ``pip install ".[testing]" fastapi``)::

    TENCENT_CHAT_SDKAPPID=1400000000 TENCENT_CHAT_SECRET_KEY=... TENCENT_CHAT_ADMIN=... \\
    TENCENT_CHAT_CALLBACK_TOKEN=... uvicorn --factory examples.web_service:create_app

or on the embedded fake server, with no credentials (robot ``@RBT#demo``, rooms
``room-1`` to ``room-100``, and ``POST /demo/say?user=alice&text=hi`` to have a
simulated user talk to the robot)::

    python examples/web_service.py --fake    # or TENCENT_CHAT_FAKE=1

    curl -X POST localhost:8000/rooms/room-1/robots/%40RBT%23demo
    curl -X POST localhost:8000/jobs/provision -H 'content-type: application/json' \\
         -d '{"robot": "@RBT#demo", "rooms": ["room-2", "room-3", "room-4"]}'
    curl localhost:8000/jobs/1
    curl localhost:8000/ready

``tests/test_examples_services.py`` runs it against the fake.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from tencent_chat_robots import (
    APIError,
    BulkOutcome,
    BulkRun,
    BulkStoppedError,
    Call,
    ClientClosedError,
    DeadlineExceededError,
    QueueTimeoutError,
    RequestError,
    TencentChat,
    TencentChatError,
    ValidationError,
)
from tencent_chat_robots.callbacks import C2CMessage, GroupMention, RobotCallbacks, SignFilter

# Interactive calls are made while a user, and a load balancer, wait for the answer.
# Rule of thumb:
# - deadline below the load balancer's timeout (and what your users will wait): the
#   service answers 503 itself, instead of the balancer giving up on a request whose
#   call still runs behind it;
# - max_wait small: interactive calls already go ahead of bulk ones, so a long wait for
#   a rate permit means the app's budget is spent; say so early (503, Retry-After);
# - timeout <= deadline, with room for a retry of a quick failure (10002...); Tencent's
#   server gives up after 3 s itself, so a shorter timeout can end calls that would
#   have succeeded (they are answered 503 with request_sent, and may have been done).
# For a balancer that waits 5 s:
INTERACTIVE_MAX_WAIT = 0.3
INTERACTIVE_TIMEOUT = 3.0
INTERACTIVE_DEADLINE = 4.0
# A bulk job's calls: each item bounded, so one stuck call cannot hold a job forever.
JOB_ITEM_DEADLINE = 30.0
# Shutdown: what running jobs (their calls on the wire) and callback handlers get.
SHUTDOWN_GRACE = 10.0
MAX_ROOMS_PER_JOB = 10_000
KEPT_JOBS = 100  # finished jobs remembered for GET /jobs/{id}


@dataclass(frozen=True)
class Settings:
    """What the service is configured with (``from_env()`` reads the environment)."""

    sdkappid: int
    callback_token: str | None = None
    max_wait: float = INTERACTIVE_MAX_WAIT
    timeout: float = INTERACTIVE_TIMEOUT
    deadline: float = INTERACTIVE_DEADLINE
    job_item_deadline: float = JOB_ITEM_DEADLINE
    shutdown_grace: float = SHUTDOWN_GRACE

    @classmethod
    def from_env(cls) -> Settings:
        # TencentChat reads TENCENT_CHAT_SECRET_KEY, _ADMIN, _REGION and _BASE_URL itself.
        return cls(
            sdkappid=int(os.environ["TENCENT_CHAT_SDKAPPID"]),
            callback_token=os.environ.get("TENCENT_CHAT_CALLBACK_TOKEN"),
        )


# -- background jobs ----------------------------------------------------------------------


@dataclass
class ProvisionJob:
    """One ``chat.bulk`` run putting a robot in many rooms, and what became of each room.

    Every room ends as succeeded, failed (Tencent's error, with its code) or not done:
    stopped before it was sent, never taken, or ended while on the wire
    (``maybe_sent``: the robot may be in the room; adding it again is harmless).
    """

    id: str
    robot: str
    rooms: list[str]
    run: BulkRun
    state: str = "running"  # then "stopping", and "finished" or "stopped"
    error: str | None = None  # what ended the run early (the client closed under it)
    succeeded: int = 0
    failures: dict[int, dict[str, Any]] = field(default_factory=dict)
    not_done: dict[int, dict[str, Any]] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None

    async def execute(self) -> None:
        try:
            async with self.run:  # on the way out: cancelled, its workers waited for
                try:
                    async for outcome in self.run:
                        self._record(outcome)
                except TencentChatError as error:  # the client closed under the run
                    self.error = f"{type(error).__name__}: {error}"
        finally:
            # Cancelled (past the shutdown grace): the outcomes not iterated over yet.
            for outcome in self.run.undelivered:
                self._record(outcome)
            for index in range(self.run.taken, len(self.rooms)):  # never read: not sent
                self.not_done[index] = {"room": self.rooms[index], "maybe_sent": False}
            self.state = "stopped" if self.not_done else "finished"

    def _record(self, outcome: BulkOutcome[Any]) -> None:
        room, error = self.rooms[outcome.index], outcome.error
        if error is None:
            self.succeeded += 1
        elif isinstance(error, (BulkStoppedError, ClientClosedError)):
            self.not_done[outcome.index] = {
                "room": room,
                "maybe_sent": error.request_sent,
                "error": type(error).__name__,
            }
        else:
            self.failures[outcome.index] = {
                "room": room,
                "error": type(error).__name__,
                "message": str(error),  # the SDK's messages never hold a secret
                "code": getattr(error, "code", None),
                "maybe_sent": getattr(error, "request_sent", None),
            }

    def stop(self) -> None:
        if self.state == "running":
            self.state = "stopping"
        self.run.stop()  # no new calls; those on the wire finish

    def report(self) -> dict[str, Any]:
        ended = self.state in ("finished", "stopped")
        return {
            "id": self.id,
            "robot": self.robot,
            "state": self.state,
            "error": self.error,
            "total": len(self.rooms),
            "taken": self.run.taken,
            "in_flight": self.run.in_flight,
            "succeeded": self.succeeded,
            "failed": len(self.failures),
            "pending": len(self.rooms) - self.succeeded - len(self.failures),
            "failures": [self.failures[i] for i in sorted(self.failures)],
            # Known once the run has ended: every room without an outcome of its own.
            "not_done": [self.not_done[i] for i in sorted(self.not_done)] if ended else None,
        }


class Jobs:
    """The service's background jobs: started on request, stopped at shutdown."""

    def __init__(self) -> None:
        self._jobs: dict[str, ProvisionJob] = {}
        self._ids = itertools.count(1)
        self.closing = False

    def start(
        self, chat: TencentChat, robot: str, rooms: list[str], deadline: float
    ) -> ProvisionJob:
        # Built (and so checked) now: a bad id is the request's 422, not a failed job.
        calls = [Call.add_robot_to_room(room, robot) for room in rooms]
        run = chat.bulk(calls, deadline=deadline)  # its own trace, not the request's
        job = ProvisionJob(id=str(next(self._ids)), robot=robot, rooms=rooms, run=run)
        job.task = asyncio.create_task(job.execute(), name=f"provision job {job.id}")
        self._jobs[job.id] = job
        self._forget_old()
        return job

    def get(self, job_id: str) -> ProvisionJob | None:
        return self._jobs.get(job_id)

    def _forget_old(self) -> None:
        ended = [j for j in self._jobs.values() if j.task is not None and j.task.done()]
        for job in ended[: max(0, len(ended) - KEPT_JOBS)]:
            del self._jobs[job.id]

    async def stop_all(self, grace: float) -> None:
        """Stop every running job; after ``grace`` s, cancel the calls still on the wire."""
        self.closing = True
        running = [j for j in self._jobs.values() if j.task is not None and not j.task.done()]
        for job in running:
            job.stop()
        tasks = {job.task for job in running if job.task is not None}
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=grace)
        for job in running:
            if job.task in late:
                job.run.cancel()  # their calls end now, reported maybe_sent
        if late:
            await asyncio.wait(late)


# -- the application ----------------------------------------------------------------------


def create_app(
    settings: Settings | None = None, *, make_chat: Callable[[], TencentChat] | None = None
) -> FastAPI:
    """The service. ``make_chat`` makes its one client (default: ``TencentChat`` from
    the ``TENCENT_CHAT_*`` environment variables), in the lifespan."""
    settings = settings or Settings.from_env()
    # A web server logs each request's query; a callback's carries its Sign.
    logging.getLogger("uvicorn.access").addFilter(SignFilter())
    bot = RobotCallbacks(sdkappid=settings.sdkappid, token=settings.callback_token)
    jobs = Jobs()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Made here, on the server's event loop (a client belongs to its loop).
        chat = make_chat() if make_chat is not None else TencentChat(settings.sdkappid)
        app.state.chat = chat
        app.state.stopping = False
        try:
            yield
        finally:
            app.state.stopping = True  # /ready says 503 from now on
            # Bulk runs stop and callback handlers finish BEFORE the client closes:
            # closing first would fail every call they still have to make.
            try:
                await asyncio.gather(
                    jobs.stop_all(settings.shutdown_grace),
                    # A routed app's own lifespan is not run by Starlette: close it here.
                    bot.aclose(timeout=settings.shutdown_grace),
                )
            finally:
                await chat.aclose()

    app = FastAPI(lifespan=lifespan)
    app.state.settings = settings
    app.state.bot = bot
    app.state.jobs = jobs

    @bot.on_c2c_message
    async def echo(event: C2CMessage) -> None:
        # Runs after Tencent got its acknowledgement: the 2-second limit does not apply.
        chat: TencentChat = app.state.chat
        await chat.send_c2c_message(event.robot, event.sender, f"you said: {event.text}")

    @bot.on_group_mention
    async def greet(event: GroupMention) -> None:
        chat: TencentChat = app.state.chat
        await chat.send_group_message(
            event.group_id, f"hello {event.sender}", from_account=event.robots[0]
        )

    app.include_router(router)
    # The exact path as a route: a mount would serve "/tencent/callback/" and answer the
    # bare path with a redirect, which Tencent counts as a failed callback.
    app.add_route("/tencent/callback", bot, methods=["POST"])
    return app


# -- dependencies ---------------------------------------------------------------------------


def get_chat(request: Request) -> TencentChat:
    """The application's client (a dependency): 503 while it is starting or stopping."""
    chat: TencentChat | None = getattr(request.app.state, "chat", None)
    if chat is None or chat.closed or request.app.state.stopping:
        raise HTTPException(503, "the service is starting or shutting down")
    return chat


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_jobs(request: Request) -> Jobs:
    jobs: Jobs = request.app.state.jobs
    return jobs


Chat = Annotated[TencentChat, Depends(get_chat)]
AppSettings = Annotated[Settings, Depends(get_settings)]
AppJobs = Annotated[Jobs, Depends(get_jobs)]

router = APIRouter()


def _failure(status: int, error: TencentChatError, **extra: Any) -> JSONResponse:
    body = {"error": type(error).__name__, "message": str(error), **extra}
    headers = {"Retry-After": "1"} if status == 503 else None
    return JSONResponse(body, status_code=status, headers=headers)


@router.post("/rooms/{room_id}/robots/{robot}", response_model=None)
async def add_robot_to_room(
    room_id: str, robot: str, chat: Chat, settings: AppSettings
) -> dict[str, Any] | JSONResponse:
    # A view: the same client with bounds for this kind of call. It needs no closing
    # (and refuses it): the lifespan closes the one client.
    urgent = chat.with_options(
        max_wait=settings.max_wait, timeout=settings.timeout, deadline=settings.deadline
    )
    try:
        result = await urgent.add_robot_to_room(room_id, robot)
    except ValidationError as error:  # refused before anything was sent
        return _failure(422, error)
    except (DeadlineExceededError, QueueTimeoutError, ClientClosedError) as error:
        # Too busy or too slow right now: try again. ``request_sent``: it may have been
        # done all the same (adding a robot twice is harmless).
        return _failure(503, error, request_sent=error.request_sent)
    except APIError as error:  # Tencent answered with an error code
        return _failure(502, error, code=error.code, request_id=error.request_id)
    except RequestError as error:  # no usable answer: connection, gateway page
        return _failure(502, error, code=None, request_id=error.request_id)
    return {
        "room_id": room_id,
        "robot": robot,
        "request_id": result.request_id,
        "settled_on_retry": result.settled_on_retry,
    }


@router.get("/ready", response_model=None)
async def ready(request: Request) -> JSONResponse:
    """Readiness: 200 when the client and the callback receiver can serve, else 503."""
    chat: TencentChat | None = getattr(request.app.state, "chat", None)
    if chat is None:
        return JSONResponse({"ready": False, "reason": "starting"}, status_code=503)
    health = chat.health()  # from memory: no request to Tencent
    load = request.app.state.bot.load
    serving = health.ready and load.ready and not request.app.state.stopping
    body = {
        **health.as_dict(),  # closed, ready, limiter, redis, waiting, in_flight, ...
        "callbacks": {"ready": load.ready, "running": load.running, "backlog": load.backlog},
        "stopping": request.app.state.stopping,
    }
    return JSONResponse(body, status_code=200 if serving else 503)


class ProvisionRequest(BaseModel):
    robot: str
    rooms: list[str] = Field(min_length=1, max_length=MAX_ROOMS_PER_JOB)


@router.post("/jobs/provision", status_code=202, response_model=None)
async def start_provision_job(
    body: ProvisionRequest, chat: Chat, jobs: AppJobs, settings: AppSettings
) -> dict[str, Any] | JSONResponse:
    if jobs.closing:
        raise HTTPException(503, "the service is shutting down")
    try:
        job = jobs.start(chat, body.robot, body.rooms, settings.job_item_deadline)
    except ValidationError as error:
        return _failure(422, error)
    return {"id": job.id, "url": f"/jobs/{job.id}"}


@router.get("/jobs/{job_id}")
async def job_progress(job_id: str, jobs: AppJobs) -> dict[str, Any]:
    job = jobs.get(job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id}")
    return job.report()


# -- python examples/web_service.py [--fake] -------------------------------------------------


def _fake_app() -> FastAPI:
    """The service on the embedded fake server, with a route for a simulated user."""
    import anyio

    from tencent_chat_robots.testing import FakeTencentChat

    fake = FakeTencentChat()
    robot = "@RBT#demo"
    fake.create_robot(robot)
    for i in range(1, 101):
        fake.create_room(f"room-{i}")
    token = "demo-callback-token-0123456789"
    app = create_app(Settings(sdkappid=fake.sdkappid, callback_token=token), make_chat=fake.client)
    fake.set_callback(app, token=token, path="/tencent/callback")  # in-process

    @app.post("/demo/say")
    async def say(user: str, text: str) -> list[dict[str, str]]:
        """A simulated user sends ``text`` to the robot; the conversation so far."""
        await fake.user_sends(user, robot, text)
        with anyio.fail_after(5):  # the echo handler answers as the robot
            await fake.wait_until(lambda: fake.transcript(user, robot)[-1].sender == robot)
        return [{"from": m.sender, "text": m.text} for m in fake.transcript(user, robot)]

    return app


def main() -> None:
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fake", action="store_true", help="run on the embedded fake server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    fake = args.fake or os.environ.get("TENCENT_CHAT_FAKE", "") not in ("", "0")
    uvicorn.run(_fake_app() if fake else create_app(), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
