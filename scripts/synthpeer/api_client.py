"""The control-plane half of the synthetic peer: REST calls and the class WebSocket.

It speaks exactly what the browser page speaks (docs/protocol.md), so the
integration tests, the load test and the benchmarks exercise the public API only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp


class ApiFailure(Exception):
    """A REST call answered ``{"success": false}`` (``status`` and ``error`` as sent), or a
    WebSocket event was answered with ``ERROR`` (``status`` 0, ``event`` the event)."""

    def __init__(self, status: int, error: str, event: str | None = None) -> None:
        super().__init__(f"{status} {error}" if event is None else f"{event}: {error}")
        self.status = status
        self.error = error
        self.event = event


@dataclass(frozen=True)
class Account:
    """A signed-in user: id, role and bearer token."""

    id: str
    name: str
    email: str
    role: str
    token: str


class ClassroomApi:
    """REST client for one server (``base_url`` like ``http://127.0.0.1:3000``)."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session or aiohttp.ClientSession()
        self._owns_session = session is None

    async def close(self) -> None:
        if self._owns_session:
            await self._session.close()

    async def __aenter__(self) -> ClassroomApi:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def request(
        self, method: str, path: str, *, token: str | None = None, body: Any = None
    ) -> tuple[int, dict[str, Any]]:
        """Raw call: ``(status, parsed envelope)``; never raises for an error status."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        kwargs: dict[str, Any] = {"headers": headers}
        if body is not None:
            kwargs["data"] = body if isinstance(body, (bytes, str)) else json.dumps(body)
            headers["Content-Type"] = "application/json"
        async with self._session.request(method, self.base_url + path, **kwargs) as response:
            return response.status, await response.json(content_type=None)

    async def text(self, path: str, *, token: str | None = None) -> tuple[int, str, str]:
        """``GET`` a document that is not the JSON envelope (a CSV): status, content
        type, text."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self._session.get(self.base_url + path, headers=headers) as response:
            return response.status, response.content_type, await response.text()

    async def call(
        self, method: str, path: str, *, token: str | None = None, body: Any = None
    ) -> Any:
        """The ``data`` of a successful call, else :class:`ApiFailure`."""
        status, envelope = await self.request(method, path, token=token, body=body)
        if not envelope.get("success"):
            raise ApiFailure(status, str(envelope.get("error")))
        return envelope["data"]

    async def signup(self, name: str, email: str, password: str, role: str) -> dict[str, Any]:
        data: dict[str, Any] = await self.call(
            "POST",
            "/auth/signup",
            body={"name": name, "email": email, "password": password, "role": role},
        )
        return data

    async def login(self, email: str, password: str) -> str:
        data = await self.call("POST", "/auth/login", body={"email": email, "password": password})
        return str(data["token"])

    async def register(
        self, name: str, email: str, role: str, password: str = "secret-pass"
    ) -> Account:
        """Sign up and log in in one step."""
        user = await self.signup(name, email, password, role)
        return Account(user["_id"], name, email, role, await self.login(email, password))

    async def create_class(self, teacher: Account, name: str) -> dict[str, Any]:
        data: dict[str, Any] = await self.call(
            "POST", "/class", token=teacher.token, body={"className": name}
        )
        return data

    async def enrol(self, teacher: Account, class_id: str, student_id: str) -> dict[str, Any]:
        data: dict[str, Any] = await self.call(
            "POST",
            f"/class/{class_id}/add-student",
            token=teacher.token,
            body={"studentId": student_id},
        )
        return data

    async def start_session(self, teacher: Account, class_id: str) -> dict[str, Any]:
        data: dict[str, Any] = await self.call(
            "POST", "/attendance/start", token=teacher.token, body={"classId": class_id}
        )
        return data

    async def end_session(self, teacher: Account, class_id: str) -> dict[str, Any]:
        data: dict[str, Any] = await self.call(
            "POST", "/attendance/end", token=teacher.token, body={"classId": class_id}
        )
        return data

    async def open_socket(self, token: str, class_id: str | None = None) -> ClassSocket:
        params = {"token": token}
        if class_id:
            params["classId"] = class_id
        ws = await self._session.ws_connect(
            self.base_url + "/ws", params=params, max_msg_size=4 * 1024 * 1024
        )
        return ClassSocket(ws)


class ClassSocket:
    """The class WebSocket: send events, and await the ones the server sends."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.received: list[dict[str, Any]] = []
        self.handlers: dict[str, Callable[[dict[str, Any]], None]] = {}
        """Events given to a handler as they arrive instead of being kept in ``received``."""
        self.observers: dict[str, list[Callable[[dict[str, Any]], None]]] = {}
        """Callbacks told of events as they arrive, before the handler or ``received``."""
        self._arrived = asyncio.Event()
        self._reader = asyncio.create_task(self._read())
        self.close_code: int | None = None

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                frame = json.loads(message.data)
                for observer in self.observers.get(frame.get("event"), ()):
                    observer(frame.get("data") or {})
                handler = self.handlers.get(frame.get("event"))
                if handler is not None:
                    handler(frame.get("data") or {})
                    continue
                self.received.append(frame)
                self._arrived.set()
        self.close_code = self.ws.close_code
        self._arrived.set()

    def observe(self, event: str, observer: Callable[[dict[str, Any]], None]) -> None:
        self.observers.setdefault(event, []).append(observer)

    @property
    def closed(self) -> bool:
        return self._reader.done()

    async def send(self, event: str, data: dict[str, Any] | None = None) -> None:
        await self.ws.send_str(json.dumps({"event": event, "data": data or {}}))

    async def send_raw(self, text: str) -> None:
        await self.ws.send_str(text)

    async def next(
        self,
        event: str,
        *,
        timeout: float = 10.0,
        where: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """Remove and return the first received ``data`` of ``event`` (matching ``where``)."""
        return (
            await self._take(
                lambda name, data: name == event and (where is None or where(data)),
                timeout,
                event,
            )
        )[1]

    async def error_for(self, event: str, *, timeout: float = 10.0) -> dict[str, Any]:
        """Remove and return the first ``ERROR`` that answers ``event`` (``{message, event}``)."""
        return await self.next("ERROR", timeout=timeout, where=lambda e: e.get("event") == event)

    async def request(
        self,
        event: str,
        data: dict[str, Any] | None,
        reply: str,
        *,
        timeout: float = 10.0,
        where: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """Send ``event`` and wait for ``reply`` (matching ``where``), or for the ``ERROR``
        that answers ``event`` (raised as ``ApiFailure``); errors answering other events
        stay in ``received``."""
        await self.send(event, data)
        name, result = await self._take(
            lambda name, data: (
                (name == reply and (where is None or where(data)))
                or (name == "ERROR" and data.get("event") == event)
            ),
            timeout,
            f"{reply} or ERROR for {event}",
        )
        if name == "ERROR":
            raise ApiFailure(0, str(result.get("message", "")), event)
        return result

    async def _take(
        self,
        wanted: Callable[[str, dict[str, Any]], bool],
        timeout: float,
        what: str,
    ) -> tuple[str, dict[str, Any]]:
        async with asyncio.timeout(timeout):
            while True:
                for index, frame in enumerate(self.received):
                    name = frame.get("event")
                    data = frame.get("data") or {}
                    if isinstance(name, str) and wanted(name, data):
                        del self.received[index]
                        return name, data
                if self._reader.done():
                    raise ConnectionError(f"socket closed before {what} arrived")
                self._arrived.clear()
                await self._arrived.wait()

    async def quiet(self, seconds: float = 0.2) -> list[dict[str, Any]]:
        """Whatever arrives within ``seconds`` (and was not consumed yet)."""
        await asyncio.sleep(seconds)
        pending, self.received = self.received, []
        return pending

    async def close(self) -> None:
        await self.ws.close()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
