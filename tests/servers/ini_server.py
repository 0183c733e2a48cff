"""waitress as an .ini file's ``[server:main]`` configures it, on another address:
``python -m tests.servers.ini_server config/production.ini 127.0.0.1:PORT``.

The app comes from the file's ``[app:main]`` through paste (as pserve loads it), and every waitress
option of ``[server:main]`` but ``use`` and ``listen`` is passed on: what is tested is what the
file says (its trusted proxy settings above all)."""

from __future__ import annotations

import configparser
import sys

import waitress
from pyramid.paster import get_app

NOT_PASSED = ("use", "listen")


def server_options(ini: str) -> dict[str, str]:
    parser = configparser.ConfigParser()
    parser.read(ini)
    return {key: value for key, value in parser["server:main"].items() if key not in NOT_PASSED}


def main(ini: str, listen: str) -> None:
    waitress.serve(get_app(ini), listen=listen, **server_options(ini))


if __name__ == "__main__":
    main(*sys.argv[1:3])
