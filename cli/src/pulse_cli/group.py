"""The root ``pulse`` group: sub-command groups imported on first use, plain help text.

Start-up time is the reason: ``pulse --help`` (and any command) used to import every
service (pydantic models, FastStream, ClickHouse clients…) before parsing its arguments.
A :class:`LazyGroup` knows each sub-group by name, module and one-line help, and imports
the module only when that group is run or asked for its help.

Help text is click's plain formatter (typer's Rich formatter imports ~0.25 s of modules
and shows ``<bool>``-style type placeholders): :func:`tidy_help` gives every option a
metavar naming its value (``--format [table|csv|json]``, ``--from FROM``) and none to flags.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from typer._click import Command, Context, HelpFormatter

from pulse_cli.errors import PulseGroup


@dataclass(frozen=True)
class LazySubgroup:
    """``module:attribute`` of a ``typer.Typer`` app, mounted as ``pulse <name>``."""

    target: str
    help: str


def tidy_help(command: Command) -> Command:
    """Plain help (no Rich), metavars instead of type placeholders, for ``command`` and
    every sub-command already loaded."""
    if hasattr(command, "rich_markup_mode"):
        command.rich_markup_mode = None
    for param in command.params:
        if param.param_type_name == "argument":
            # typer adds the type (``FILE <file>``) to an argument's help whatever its
            # metavar: the name says enough.
            setattr(param, "display_type_rich", _no_type)  # noqa: B010
            param.metavar = param.metavar or (param.name or "value").upper()
            continue
        if param.metavar is not None:
            continue
        if getattr(param, "is_flag", False) or getattr(param, "is_bool_flag", False):
            param.metavar = ""
            continue
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is not None and descriptor.is_choice and descriptor.choices:
            names = [str(getattr(c, "value", c)) for c in descriptor.choices]
            param.metavar = f"[{'|'.join(names)}]"
            continue
        if descriptor is not None and descriptor.is_path:
            param.metavar = "PATH"
            continue
        longest = max(param.opts, key=len).lstrip("-")
        param.metavar = longest.upper().replace("-", "_")
    for sub in getattr(command, "commands", {}).values():
        tidy_help(sub)
    return command


def _no_type(ctx: Context) -> None:
    return None


class LazyGroup(PulseGroup):
    """:class:`PulseGroup` whose ``lazy_subgroups`` are imported when first used."""

    lazy_subgroups: Mapping[str, LazySubgroup] = {}

    def list_commands(self, ctx: Context) -> list[str]:
        return [*self.commands, *(n for n in self.lazy_subgroups if n not in self.commands)]

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy_subgroups:
            self.commands[cmd_name] = load_subgroup(cmd_name, self.lazy_subgroups[cmd_name])
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: Context, formatter: HelpFormatter) -> None:
        # The listing uses the declared help of groups not loaded yet: listing them must
        # not import them.
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max((len(n) for n in names), default=0)
        rows: list[tuple[str, str]] = []
        for name in names:
            loaded = self.commands.get(name)
            if loaded is not None:
                if not loaded.hidden:
                    rows.append((name, loaded.get_short_help_str(limit)))
            else:
                rows.append((name, self.lazy_subgroups[name].help))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        tidy_help(self)
        return super().main(*args, **kwargs)


def load_subgroup(name: str, spec: LazySubgroup) -> Command:
    import typer.main

    module_name, _, attribute = spec.target.partition(":")
    app = getattr(importlib.import_module(module_name), attribute or "app")
    group = typer.main.get_group(app)
    group.name = name
    group.help = spec.help
    return tidy_help(group)
