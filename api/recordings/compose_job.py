"""Runs ``sfu.compose`` in a subprocess for a stopped recording, with progress in the store."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

from ..models import Recording
from ..store import Store

log = logging.getLogger(__name__)

COMPOSED_NAME = "composed.webm"
NOTHING_RECORDED = "Nothing was recorded"
PROGRESS_STEP = 0.05


def compose_manifest(recording: Recording, directory: Path) -> dict[str, Any]:
    """What ``sfu.compose`` reads: every file of ``recording`` (in ``directory``), with
    whose it is, its source and where it lies on the recording's timeline."""
    tracks = [
        {
            "path": str(directory / f.name),
            "participant": f.user_id,
            "kind": f.kind,
            "source": f.source,
            "offset": f.offset,
            "duration": f.duration,
        }
        for f in recording.files
    ]
    return {"tracks": tracks}


async def run_compose(store: Store, recording: Recording, directory: Path) -> Recording:
    """Compose ``recording``'s files into ``directory/composed.webm``; the job's state and
    progress are written to the store as it goes. Returns the final recording."""
    if not recording.files:
        failed = recording.with_job(status="failed", error=NOTHING_RECORDED)
        await store.put_recording(failed)
        return failed
    manifest = directory / "manifest.json"
    await asyncio.to_thread(manifest.write_text, json.dumps(compose_manifest(recording, directory)))
    current = recording.with_job(status="running", progress=0.0, error=None)
    await store.put_recording(current)
    output = directory / COMPOSED_NAME
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sfu.compose",
        str(manifest),
        str(output),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        duration: float | None = None
        async for raw in process.stdout:
            line = json.loads(raw)
            if "progress" in line and line["progress"] - current.job.progress >= PROGRESS_STEP:
                current = current.with_job(progress=float(line["progress"]))
                await store.put_recording(current)
            if line.get("done"):
                duration = float(line["duration"])
        errors = (await process.stderr.read()).decode(errors="replace").strip()
        code = await process.wait()
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    if code != 0 or duration is None:
        reason = errors.splitlines()[-1] if errors else f"compose exited with code {code}"
        log.warning("compose of recording %s failed: %s", recording.id, reason)
        final = current.with_job(status="failed", error=reason)
    else:
        size = (await asyncio.to_thread(output.stat)).st_size
        final = current.with_job(
            status="done", progress=1.0, file=COMPOSED_NAME, size=size, duration=duration
        )
    await store.put_recording(final)
    return final
