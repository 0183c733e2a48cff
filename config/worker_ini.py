"""Which .ini file the Celery worker (app/worker.py) reads its ``deferred_task.*`` keys from."""

from __future__ import annotations

import configparser
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_INI = ROOT / "config" / "production.ini"
INI_ENV = "APP_INI"


def worker_ini_path(environ: Mapping[str, str]) -> Path:
    """``APP_INI`` (an existing file), else config/production.ini."""
    raw = environ.get(INI_ENV)
    if raw is None:
        return DEFAULT_INI
    path = Path(raw.strip())
    try:
        exists = bool(raw.strip()) and path.is_file()
    except OSError:  # a name too long for the file system
        exists = False
    if not exists:
        raise ValueError(f"{INI_ENV}={raw!r} is not an existing file; allowed: the path of a paste .ini file")
    return path


def ini_settings(path: Path) -> dict[str, str]:
    """The ``[app:main]`` keys of a paste .ini file (no interpolation: values are plain)."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(path, encoding="utf-8")
    return dict(parser["app:main"]) if parser.has_section("app:main") else {}
