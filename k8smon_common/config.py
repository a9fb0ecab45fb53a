"""Typed settings from flags and `K8SMON_*` environment variables, one frozen dataclass per service.

A settings class declares each field with `option(...)`; `load_settings` builds the argparse parser
from those declarations, so the flag, the env var, the default and the `--help` text cannot drift
apart. Precedence: flag > env var > default. Every bad value is reported at once in one ConfigError.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

ENV_PREFIX = "K8SMON_"
T = TypeVar("T")


class ConfigError(ValueError):
    """One or more configuration values are invalid; `problems` lists every one."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in self.problems))


@dataclasses.dataclass(frozen=True)
class HostPort:
    """A listen or target address; `port` 0 asks the OS for a free port."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def option(
    default: Any,
    help: str,
    *,
    parse: Callable[[str], Any] = str,
    env_aliases: Sequence[str] = (),
    flag_aliases: Sequence[str] = (),
    metavar: str | None = None,
) -> Any:
    """Declare one setting: its default, its help text (with unit) and how to parse a string value.

    `flag_aliases` (e.g. "--old-name") and `env_aliases` keep older spellings working.
    """
    return dataclasses.field(
        default=default,
        metadata={
            "help": help,
            "parse": parse,
            "env_aliases": tuple(env_aliases),
            "flag_aliases": tuple(flag_aliases),
            "metavar": metavar,
        },
    )


# --- value parsers: each raises ValueError with a message a user can act on ---------------------


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected true/false, got {text!r}")


def parse_positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"expected a positive finite number, got {text!r}")
    return value


def parse_positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"expected an integer, got {text!r}") from None
    if value <= 0:
        raise ValueError(f"expected a positive integer, got {text!r}")
    return value


def parse_non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise ValueError(f"expected zero or a positive integer, got {text!r}")
    return value


def parse_hostport(text: str) -> HostPort:
    """`host:port`, `[v6]:port` or `:port` (all interfaces)."""
    raw = text.strip()
    if raw.startswith("["):
        host, sep, port_text = raw[1:].partition("]:")
        if not sep:
            raise ValueError(f"expected [ipv6]:port, got {text!r}")
    else:
        host, sep, port_text = raw.rpartition(":")
        if not sep:
            raise ValueError(f"expected host:port, got {text!r}")
        host = host or "0.0.0.0"
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"port must be a number in {text!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port out of range in {text!r}")
    if not host or any(c.isspace() for c in host):
        raise ValueError(f"bad host in {text!r}")
    if ":" in host:
        ipaddress.IPv6Address(host)
    return HostPort(host, port)


def parse_csv(text: str) -> tuple[str, ...]:
    """Comma-separated list; blanks dropped, so the empty string means an empty list."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parse_hostport_list(text: str) -> tuple[HostPort, ...]:
    return tuple(parse_hostport(part) for part in parse_csv(text))


def parse_log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ValueError(f"expected one of debug, info, warning, error, got {text!r}")
    return level


def parse_choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {text!r}")
        return value

    return parse


# --- loading ---------------------------------------------------------------------------------------


def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def _format_default(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def build_parser(
    cls: type, *, prog: str, description: str, version: str | None = None
) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"Every flag can also be set as an environment variable: --foo-bar is {ENV_PREFIX}FOO_BAR.",
    )
    if version is not None:
        parser.add_argument("--version", action="version", version=f"{prog} {version}")
    for f in dataclasses.fields(cls):
        meta = f.metadata
        envs = ", ".join((env_name(f.name), *meta["env_aliases"]))
        default = _format_default(f.default)
        parser.add_argument(
            flag_name(f.name),
            *meta["flag_aliases"],
            dest=f.name,
            default=None,
            metavar=meta["metavar"] or f.name.split("_")[-1].upper(),
            help=f"{meta['help']} [env {envs}; default: {default!r}]",
        )
    return parser


def load_settings(
    cls: type[T],
    argv: Sequence[str] | None,
    environ: Mapping[str, str],
    *,
    prog: str,
    description: str,
    version: str | None = None,
) -> T:
    """Build `cls` from flags, then env vars, then defaults; raise ConfigError listing every problem.

    With `version`, `--version` prints "<prog> <version>" and exits 0 (argparse's SystemExit).
    """
    parser = build_parser(cls, prog=prog, description=description, version=version)
    args = parser.parse_args(list(argv) if argv is not None else None)
    values: dict[str, Any] = {}
    problems: list[str] = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        meta = f.metadata
        raw: str | None = getattr(args, f.name)
        source = flag_name(f.name)
        if raw is None:
            for name in (env_name(f.name), *meta["env_aliases"]):
                if name in environ:
                    raw, source = environ[name], name
                    break
        if raw is None:
            continue
        try:
            values[f.name] = meta["parse"](raw)
        except ValueError as exc:
            problems.append(f"{source}={raw!r}: {exc}")
    if problems:
        raise ConfigError(problems)
    settings = cls(**values)
    validate = getattr(settings, "validate", None)
    if validate is not None:
        cross = list(validate())
        if cross:
            raise ConfigError(cross)
    return settings


def markdown_table(cls: type) -> str:
    """The README's table of flags, env vars and defaults, generated so it cannot go stale."""
    rows = ["| flag | environment variable | default | meaning |", "| --- | --- | --- | --- |"]
    for f in dataclasses.fields(cls):
        meta = f.metadata
        envs = ", ".join(f"`{e}`" for e in (env_name(f.name), *meta["env_aliases"]))
        flags = ", ".join(f"`{flag}`" for flag in (flag_name(f.name), *meta["flag_aliases"]))
        default = _format_default(f.default)
        rows.append(f"| {flags} | {envs} | `{default}` | {meta['help']} |")
    return "\n".join(rows)


def configure_logging(level: str, fmt: str = "text") -> None:
    """Text logs for people, JSON lines for log collectors."""
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        import json

        doc = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc)
