"""One error-handling layer for the whole ``pulse`` command.

Every failure ends as ONE line on stderr (``error: …``) and a non-zero exit status:

* usage errors — an unknown choice, a bad option value — exit 2 (click's convention),
  naming the command and, for choices, the valid values;
* user errors — a file that is not what the command expects, rows that fail validation,
  an unreachable server — exit 1, naming the file / row / field;
* anything else is a bug: one line with the exception and a hint to rerun with
  ``--debug``, exit 70 (``EX_SOFTWARE``).

``--debug`` (a global option) or ``PULSE_DEBUG=1`` adds the Python traceback. The layer
sits in the root command's ``main``, so it covers the console script and ``CliRunner``
alike, and parse errors as well as errors raised by a command.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

import typer
import typer._click.exceptions as cx  # typer vendors click: its exceptions, not click's
from typer._click import echo
from typer.core import TyperGroup

from pulse_shared.safe_text import terminal_safe

EXIT_USER_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70  # sysexits.h EX_SOFTWARE: a bug, not the user's input
DEBUG_HINT = "rerun with --debug (or PULSE_DEBUG=1) for the traceback"


class UserError(cx.ClickException):
    """A problem with the user's input or environment: one line, exit 1 (or ``code``)."""

    def __init__(self, message: str, code: int = EXIT_USER_ERROR) -> None:
        super().__init__(message)
        self.exit_code = code


class _DebugState:
    enabled = False
    argv: list[str] = []  # this run's arguments (the root callback skips set-up for --help)


debug_state = _DebugState()


def env_debug() -> bool:
    return os.environ.get("PULSE_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


def one_line(text: str) -> str:
    """Collapse a multi-line message (pydantic, ClickHouse) into one line, control
    characters shown as ``\\xNN`` (a message may quote what the user gave)."""
    parts = [part.strip() for part in str(text).splitlines() if part.strip()]
    return terminal_safe("; ".join(parts))


def emit(message: str) -> None:
    echo(f"error: {one_line(message)}", err=True)


def _usage_message(exc: cx.UsageError) -> str:
    # typer validates through pydantic, whose messages start with "Value error, ".
    message = one_line(exc.format_message()).replace("Value error, ", "")
    ctx = exc.ctx
    if ctx is not None:
        return f"{ctx.command_path}: {message}"
    return message


def describe(exc: BaseException) -> tuple[str, int] | None:
    """(one-line message, exit code) for a known user error, else None (a bug)."""
    if isinstance(exc, cx.UsageError):
        return _usage_message(exc), exc.exit_code
    if isinstance(exc, cx.ClickException):
        return one_line(exc.format_message()), exc.exit_code
    # Imported here, not at the top: only a failing command pays for them (start-up time).
    from aiokafka.errors import KafkaConnectionError

    from pulse_ingest.domain.imports import MappingError
    from pulse_ingest.domain.readers import BodyError
    from pulse_ingest.service import BackpressureError
    from pulse_ingest.settings import ConfigurationError
    from pulse_shared.store.base import StoreUnavailable

    if isinstance(exc, ConfigurationError):  # e.g. a weak PULSE_INGEST_PII_SALT
        return f"configuration: {one_line(str(exc))}", EXIT_USER_ERROR
    if isinstance(exc, MappingError | BodyError):
        return one_line(str(exc)), EXIT_USER_ERROR
    if isinstance(exc, BackpressureError):
        return f"could not publish: {one_line(exc.reason)}", EXIT_USER_ERROR
    if isinstance(exc, StoreUnavailable):
        return f"ClickHouse is unavailable: {one_line(str(exc))[:300]}", EXIT_USER_ERROR
    if isinstance(exc, KafkaConnectionError):
        return f"Kafka is unavailable: {one_line(str(exc))[:300]}", EXIT_USER_ERROR
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):  # settings from the environment
        from pulse_shared.config_checks import describe_settings_error

        return f"configuration: {describe_settings_error(exc)}", EXIT_USAGE
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}", EXIT_USER_ERROR
    if isinstance(exc, ConnectionError | TimeoutError):
        return f"cannot reach a server: {type(exc).__name__}: {exc}", EXIT_USER_ERROR
    return None


class PulseGroup(TyperGroup):
    """The root ``pulse`` group: runs the command, turns every failure into one line."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        debug_state.enabled = env_debug()
        argv = list(sys.argv[1:] if args is None else args)
        debug_state.argv = argv
        code = run_guarded(
            lambda: super(PulseGroup, self).main(
                args=argv, prog_name=prog_name, complete_var=complete_var,
                standalone_mode=False, windows_expand_args=windows_expand_args, **extra,
            )
        )
        if standalone_mode:
            sys.exit(code)
        return code


def run_guarded(call: Any) -> int:
    """Run ``call`` (click's non-standalone main) and map its outcome to an exit code."""
    try:
        result = call()
    except cx.NoArgsIsHelpError as exc:
        return exc.exit_code  # the help is already printed
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        emit("aborted")
        return EXIT_USER_ERROR
    except Exception as exc:
        return report(exc)
    # Non-standalone click returns the command's value, or the code of a typer.Exit.
    return result if isinstance(result, int) else 0


def report(exc: BaseException) -> int:
    """Print ``exc`` as one line (plus the traceback under --debug); its exit code."""
    debug = debug_state.enabled or env_debug()
    known = describe(exc)
    if debug and not isinstance(exc, cx.UsageError):
        traceback.print_exception(exc, file=sys.stderr)
    if known is not None:
        message, code = known
        emit(message)
        return code
    detail = one_line(str(exc))
    emit(f"internal error: {type(exc).__name__}{': ' + detail if detail else ''}"
         + ("" if debug else f" ({DEBUG_HINT})"))
    return EXIT_INTERNAL
