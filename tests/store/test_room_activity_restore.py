"""A room reopened for a session that is still active (the server restarted) finds its
chat and polls as the record has them, on every backend: the history without deleted
messages, the open poll with its votes (an anonymous one counts afresh: its choices were
never stored), ended polls ended."""

from __future__ import annotations

from api.models import AttendanceSession, User
from api.rooms.chat import RoomChat
from api.rooms.polls import RoomPolls
from api.store import Store
from tests.store.test_store_contract import make_user, session_with_students


async def reopened(store: Store, session: AttendanceSession) -> tuple[RoomChat, RoomPolls]:
    chat, polls = RoomChat(store, session), RoomPolls(store, session)
    await chat.restore()
    await polls.restore()
    return chat, polls


async def test_chat_history_survives_a_restart(store: Store) -> None:
    session, [kim, sam] = await session_with_students(store, 2)
    teacher = await make_user(store, "teacher")
    chat = RoomChat(store, session)
    await chat.restore()
    first = await chat.post(kim, "first")
    second = await chat.post(sam, "<i>second</i>")
    await chat.delete(teacher, first["messageId"])
    third = await chat.post(kim, "third")
    again, _ = await reopened(store, session)
    assert again.history() == [second, third]
    # The deleted message stays deleted; the others can still be deleted.
    assert (await again.delete(teacher, second["messageId"]))["messageId"] == second["messageId"]


async def test_an_open_poll_and_its_votes_survive_a_restart(store: Store) -> None:
    session, [kim, sam] = await session_with_students(store, 2)
    teacher: User = await make_user(store, "teacher")
    polls = RoomPolls(store, session)
    await polls.restore()
    ended = await polls.start(teacher, "Ended?", ["yes", "no"], False)
    await polls.vote(kim, ended.id, 0)
    await polls.end(teacher, ended.id)
    open_poll = await polls.start(teacher, "Open?", ["a", "b", "c"], False)
    await polls.vote(kim, open_poll.id, 2)
    await polls.vote(sam, open_poll.id, 1)
    await polls.vote(kim, open_poll.id, 1)

    _, again = await reopened(store, session)
    current = again.current
    assert current is not None and current.id == open_poll.id
    assert (current.question, current.options, current.counts()) == (
        "Open?",
        ["a", "b", "c"],
        [0, 2, 0],
    )
    assert again.my_vote(current, kim.id) == 1


async def test_an_anonymous_poll_keeps_its_final_counts_across_a_restart(store: Store) -> None:
    session, [kim, sam] = await session_with_students(store, 2)
    teacher = await make_user(store, "teacher")
    polls = RoomPolls(store, session)
    await polls.restore()
    done = await polls.start(teacher, "Done?", ["x", "y"], True)
    await polls.vote(kim, done.id, 1)
    await polls.vote(sam, done.id, 1)
    await polls.end(teacher, done.id)
    running = await polls.start(teacher, "Running?", ["x", "y"], True)
    await polls.vote(kim, running.id, 0)

    _, again = await reopened(store, session)
    finished = again.get(done.id)
    assert finished is not None and finished.counts() == [0, 2] and not finished.open
    current = again.current
    assert current is not None and current.id == running.id
    assert current.counts() == [0, 0]  # its choices were never stored: it counts afresh
    assert again.my_vote(current, kim.id) is None
