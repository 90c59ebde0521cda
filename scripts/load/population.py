"""Who takes part: accounts, classes, enrolment and live sessions, made through REST."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from scripts.synthpeer.api_client import Account, ApiFailure, ClassroomApi

T = TypeVar("T")


@dataclass
class ClassPlan:
    """One synthetic class: its teacher, its students and whether its session is live."""

    index: int
    teacher: Account
    class_id: str
    students: list[Account] = field(default_factory=list)
    live: bool = False

    @property
    def members(self) -> list[Account]:
        """Teacher first, then students (the order `LoadOptions.publishes` counts in)."""
        return [self.teacher, *self.students]


@dataclass
class SetupFailure:
    """A REST step that failed while building the population."""

    step: str
    reason: str


async def build_population(
    api: ClassroomApi,
    classes: int,
    students: int,
    *,
    concurrency: int,
    on_progress: Callable[[int], None] = lambda done: None,
) -> tuple[list[ClassPlan], list[SetupFailure]]:
    """Sign up and log in everyone, create and fill the classes, start their sessions.

    Accounts use a random run id in their e-mail, so runs never collide on a server.
    """
    run = secrets.token_hex(4)
    gate = asyncio.Semaphore(concurrency)
    failures: list[SetupFailure] = []
    done = 0

    async def step(name: str, call: Awaitable[T]) -> T | None:
        nonlocal done
        async with gate:
            try:
                return await call
            except (ApiFailure, OSError, TimeoutError) as error:
                failures.append(SetupFailure(name, f"{type(error).__name__}: {error}"))
                return None
            finally:
                done += 1
                on_progress(done)

    async def one_class(index: int) -> ClassPlan | None:
        teacher = await step(
            f"teacher {index}",
            api.register(f"Teacher {index}", f"load-{run}-t{index}@load.test", "teacher"),
        )
        if teacher is None:
            return None
        created = await step(f"class {index}", api.create_class(teacher, f"Load class {index}"))
        if created is None:
            return None
        plan = ClassPlan(index, teacher, str(created["_id"]))
        accounts = await asyncio.gather(
            *(
                step(
                    f"student {index}.{s}",
                    api.register(
                        f"Student {index}.{s}", f"load-{run}-c{index}s{s}@load.test", "student"
                    ),
                )
                for s in range(students)
            )
        )
        for account in accounts:
            if account is None:
                continue
            enrolled = await step(
                f"enrol {account.email}", api.enrol(teacher, plan.class_id, account.id)
            )
            if enrolled is not None:
                plan.students.append(account)
        plan.live = (
            await step(f"start session {index}", api.start_session(teacher, plan.class_id))
            is not None
        )
        return plan

    plans = await asyncio.gather(*(one_class(i) for i in range(classes)))
    return [p for p in plans if p is not None], failures


def setup_steps(classes: int, students: int) -> int:
    """REST steps `build_population` makes (for progress)."""
    return classes * (3 + 2 * students)


async def end_sessions(api: ClassroomApi, plans: list[ClassPlan]) -> None:
    """End every live session (the server then closes the rooms' media)."""
    for plan in plans:
        if plan.live:
            with contextlib.suppress(ApiFailure, OSError):
                await api.end_session(plan.teacher, plan.class_id)
            plan.live = False
