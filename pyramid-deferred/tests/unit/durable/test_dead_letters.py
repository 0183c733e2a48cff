"""The dead-letter command's arguments: a clear usage error and exit code 2 for bad ones, before
anything is read or connected; a missing broker said plainly (exit code 1). Listing, replaying
and dropping against a real Redis and worker: tests/servers/test_durable_messages.py."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pyramid_deferred.durable.dead_letters import USAGE_ERROR, main

NO_SETTINGS: dict[str, str] = {}


@pytest.mark.parametrize(("argv", "said"), [
    ([], "the following arguments are required: COMMAND"),
    (["resend", "k"], "invalid choice: 'resend'"),
    (["replay"], "replay takes a KEY or --all (one of them)"),
    (["replay", "rid:0a1b2c3d:meta.purchase:0", "--all"], "replay takes a KEY or --all (one of them)"),
    (["show"], "the following arguments are required: KEY"),
    (["drop"], "the following arguments are required: KEY"),
    (["list", "extra"], "unrecognized arguments: extra"),
    (["--ini", "/no/such/file.ini", "list"], "--ini /no/such/file.ini: no such file"),
])
def test_bad_arguments_are_a_usage_error_with_exit_code_2(argv, said, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv, NO_SETTINGS)
    assert exited.value.code == USAGE_ERROR == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: pyramid-deferred-dead-letters") and said in err


def test_without_a_broker_it_says_which_setting_to_set(capsys, tmp_path: Path):
    ini = tmp_path / "app.ini"
    ini.write_text("[app:main]\ndeferred_task.budget_seconds = 3\n")
    assert main(["--ini", str(ini), "list"], NO_SETTINGS) == 1
    assert "no broker: set APP_DEFERRED_TASK_BROKER_URL" in capsys.readouterr().err


def test_a_bad_setting_in_the_ini_is_named_and_the_environment_wins(capsys, tmp_path: Path):
    ini = tmp_path / "app.ini"
    ini.write_text("[app:main]\ndeferred_task.broker_url = redis://127.0.0.1:1/0\n")
    assert main(["--ini", str(ini), "list"], NO_SETTINGS) == 1  # the broker needs a signing key
    assert "deferred_task.signing_key (APP_DEFERRED_TASK_SIGNING_KEY) is required" in capsys.readouterr().err
    assert main(["--ini", str(ini), "list"], {"APP_DEFERRED_TASK_BROKER_URL": ""}) == 1
    assert "no broker" in capsys.readouterr().err  # the environment's (empty) broker won


@pytest.mark.parametrize("command", [
    [shutil.which("pyramid-deferred-dead-letters", path=str(Path(sys.executable).parent))],
    [sys.executable, "-m", "pyramid_deferred.durable.dead_letters"],
])
def test_the_console_script_and_the_module_exit_2_on_bad_arguments(command):
    assert command[0], "the console script is not installed: pip install -e 'pyramid-deferred[celery]'"
    result = subprocess.run([*command, "replay"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "replay takes a KEY or --all" in result.stderr
