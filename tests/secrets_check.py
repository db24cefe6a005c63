"""Looking for the API token where it must never be: captured output, logs, exceptions, the metadata DB."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def leaks_in_db(db_path: Path, secret: str) -> list[str]:
    """``table.column`` of every value in a SQLite DB that contains ``secret`` (XCom, rendered fields, logs...)."""
    if not db_path.exists():
        return []
    found = []
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            cursor = db.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - names from sqlite_master
            columns = [c[0] for c in cursor.description]
            for row in cursor:
                for column, value in zip(columns, row, strict=True):
                    text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
                    if secret in text:
                        found.append(f"{table}.{column}")
    return sorted(set(found))


def leaks_in_files(root: Path, secret: str) -> list[str]:
    """Files under ``root`` (task logs, component logs) that contain ``secret``."""
    return sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and secret.encode() in path.read_bytes()
    )
