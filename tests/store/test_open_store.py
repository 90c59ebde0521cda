"""open_store picks the backend from the settings and hands it back opened."""

from __future__ import annotations

import uuid
from pathlib import Path

from api.config import Settings
from api.store import SQLITE_FILE_NAME, MongoStore, SqliteStore, open_store
from scripts.support.nx27017 import Nx27017Server


async def test_without_a_mongodb_uri_it_opens_sqlite_in_a_new_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "not" / "there" / "yet"
    store = await open_store(Settings(data_dir=data_dir))
    try:
        assert isinstance(store, SqliteStore)
        await store.create_user(name="Ada", email="ada@school.test", role="teacher")
    finally:
        await store.close()
    assert (data_dir / SQLITE_FILE_NAME).is_file()


async def test_with_a_mongodb_uri_it_opens_mongo_in_the_configured_database(
    tmp_path: Path, nx27017_server: Nx27017Server
) -> None:
    db_name = f"open_store_{uuid.uuid4().hex[:16]}"
    settings = Settings(data_dir=tmp_path, mongodb_uri=nx27017_server.uri, mongodb_db=db_name)
    store = await open_store(settings)
    try:
        assert isinstance(store, MongoStore)
        user = await store.create_user(name="Ada", email="ada@school.test", role="teacher")
        assert await store.get_user(user.id) == user
    finally:
        await store.close()
    assert not (tmp_path / SQLITE_FILE_NAME).exists()
