"""The command line and ini keys, made from the option table (`option_table.OPTIONS`), and read back.

Options with a path value: write them as `--vllm-python=PATH` (with "="). pytest guesses its
rootdir from bare path arguments before plugin options are known, so `--vllm-python PATH`
can move the rootdir (and with it node ids and the default baseline folder).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ..option_table import OPTIONS, Option, SettingsError
from ..settings import SessionSettings, check_launcher_settings, resolve_settings

GROUP = "vllm-profile"
GROUP_DESCRIPTION = "vLLM profiling regression tests (pytest-vllm-profile)"


def add_options(parser: pytest.Parser) -> None:
    """One `addoption` per flag and one `addini` per ini key of the table."""
    group = parser.getgroup(GROUP, GROUP_DESCRIPTION)
    for option in OPTIONS:
        if option.flag is not None:
            text = option.help_text + (f" [ini: {option.ini}]" if option.ini else "")
            kwargs: dict[str, Any] = {"dest": option.dest, "help": text.replace("%", "%%")}  # argparse formats %
            if option.type == "bool":
                # None tells "not given" apart, so the ini key (if any) decides then
                kwargs.update(action="store_true", default=None if option.ini else option.default)
            else:
                kwargs.update(default=None)
                if option.type == "args":
                    kwargs.update(action="append")
                if option.choices:
                    kwargs.update(choices=option.choices)
                if option.metavar:
                    kwargs.update(metavar=option.metavar)
            group.addoption(option.flag, **kwargs)
        if option.ini is not None:
            ini_help = option.ini_help or option.help_text
            if option.type == "bool":
                parser.addini(option.ini, ini_help, type="bool", default=option.default)
            elif option.type == "args":
                parser.addini(option.ini, ini_help, type="args", default=list(option.default))
            else:  # read as text, converted and checked by Option.parse like the command line's value
                parser.addini(option.ini, ini_help, type="string", default=None)


def _raw_value(config: pytest.Config, option: Option) -> Any:
    """The command line's value, else the ini key's (pytest convention: the option overrides the ini)."""
    value = config.getoption(option.dest) if option.flag is not None else None
    if option.type == "bool" and option.flag is not None:
        value = (not option.negates) if value else None
    if value is None and option.ini is not None:
        value = config.getini(option.ini)
    return value


def read_settings(config: pytest.Config) -> SessionSettings:
    """All options resolved and validated; pytest.UsageError (exit code 4) on a bad value."""
    try:
        settings = resolve_settings({o.name: _raw_value(config, o) for o in OPTIONS}, Path(config.rootpath), Path.cwd())
        if settings.enabled:
            check_launcher_settings(settings)
    except SettingsError as exc:
        raise pytest.UsageError(str(exc)) from None
    return settings
