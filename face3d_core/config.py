"""Every ``FACE3D_*`` setting of face3d in one place, read from the environment with typed parsing.

:class:`Settings` is a frozen dataclass with one field per environment variable; each field's
metadata (a :class:`Setting`) holds the variable's name, its parser (type and allowed range),
the default as users see it and a one-line description. The README's configuration table is
generated from it (``python -m face3d_core.config --markdown``, checked by a test). Nothing else
in face3d reads ``FACE3D_*`` variables from ``os.environ``: modules call :func:`get_settings`.

Parsing rules, the same for every variable:

* unset or empty (only spaces): the default;
* whole numbers (``FACE3D_JOB_WORKERS=2``) and numbers (``FACE3D_CACHE_SIZE_MB=512.5``), each
  within the range that makes sense (at least 1 worker, a positive size ...);
* yes/no: ``1``, ``true``, ``yes``, ``on`` or ``0``, ``false``, ``no``, ``off`` (any case);
* paths: ``~`` is expanded;
* choices (``FACE3D_DEVICE``, ``FACE3D_PRECISION``, ``FACE3D_BACKEND``): one of the listed
  values (any case).

A bad value raises :class:`~face3d_core.errors.ConfigError` naming the variable, the value and
what to do, e.g. ``FACE3D_JOB_WORKERS='abc' is not a whole number: set it to a number such as 2,
or unset it.`` The ``face3d`` CLI and ``python -m dashboard`` print that one line and exit with
status 1. One exception, kept from earlier versions: a ``FACE3D_CACHE_SIZE_MB`` that is not a
number is logged as a warning and the default used (a value out of range is an error).

Built once per environment: :func:`get_settings` keeps the last :class:`Settings` with the
snapshot of the environment it was built from (every ``FACE3D_*`` item, plus ``XDG_CACHE_HOME``
and ``HOME``, which the default cache folder depends on) and builds a new one only when that
snapshot changes. A server thus parses its environment once, and a test that changes a variable
(``monkeypatch.setenv``) sees the change on the next call. Taking the snapshot costs a few
microseconds.

Example:
    >>> settings = Settings.from_env({"FACE3D_JOB_WORKERS": "2", "FACE3D_OFFLINE": "yes"})
    >>> settings.job_workers, settings.offline, settings.precision
    (2, True, 'auto')
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import re
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from face3d_core.errors import ConfigError

logger = logging.getLogger(__name__)

#: Prefix of every face3d environment variable.
ENV_PREFIX = "FACE3D_"
#: Variables outside the prefix that a default depends on (the default cache folder).
_DEFAULT_INPUTS = ("XDG_CACHE_HOME", "HOME")

#: Defaults (constants for the modules that show or compare them).
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8050
DEFAULT_CACHE_SIZE_MB = 2048.0
DEFAULT_CACHE_TTL_S = 30 * 24 * 3600
DEFAULT_JOB_HEARTBEAT_S = 5.0
DEFAULT_IN_USE_S = 3600
#: Camera live depth: streams at once per server process.
DEFAULT_LIVE_STREAMS = 4
#: Shortest ``FACE3D_SECRET_KEY`` accepted (characters).
MIN_SECRET_CHARS = 32
DEFAULT_READ_TIMEOUT_S = 30.0

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def set_default_env(name: str, value: str) -> None:
    """Set a third-party library's environment variable (e.g. its telemetry switch) unless already set.

    For libraries that read their environment when they load: call it before importing them.
    """
    os.environ.setdefault(name, value)


def child_environment() -> dict[str, str]:
    """A copy of this process's environment for a helper process it starts (without ``PYTHON*`` variables).

    The helper (e.g. the image decoder of :mod:`face3d_core.decode_sandbox`) reads the same
    ``FACE3D_*`` settings; the caller adds what the helper needs on top.
    """
    return {name: value for name, value in os.environ.items() if not name.startswith("PYTHON")}


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Return the cache folder used when ``FACE3D_CACHE_DIR`` is unset.

    ``$XDG_CACHE_HOME/face3d`` where ``XDG_CACHE_HOME`` is set, else ``~/.cache/face3d``.
    """
    environ = os.environ if environ is None else environ
    xdg = environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "face3d"


# -- parsers ---------------------------------------------------------------------------------


class _NotParsable(ValueError):
    """A raw value that does not have the variable's type (the message says what it should be)."""


@dataclass(frozen=True)
class _Parser:
    """How one variable's text becomes a value.

    Attributes:
        kind: The type as users read it (README column "type").
        convert: ``text -> value``; raises :class:`_NotParsable` whose text completes
            ``"<VAR>=<value> is not ..."``.
        check: ``value -> problem or None`` (range checks), phrased like ``"less than 1"``.
        fix: What to set instead, completing ``"set it to ..."`` (e.g. ``"a number such as 2"``).
    """

    kind: str
    convert: Callable[[str], Any]
    check: Callable[[Any], str | None] = lambda value: None
    fix: str = "a valid value"


def _whole_number(minimum: int, maximum: int | None = None, example: str = "2") -> _Parser:
    def convert(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise _NotParsable("a whole number") from None

    def check(value: int) -> str | None:
        if value < minimum:
            return f"less than {minimum}"
        if maximum is not None and value > maximum:
            return f"more than {maximum}"
        return None

    kind = f"whole number, {minimum} to {maximum}" if maximum is not None else f"whole number, {minimum} or more"
    return _Parser(kind, convert, check, f"a number such as {example}")


def _positive_number(example: str) -> _Parser:
    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise _NotParsable("a number") from None
        if not math.isfinite(value):
            raise _NotParsable("a finite number")
        return value

    def check(value: float) -> str | None:
        return "not more than 0" if value <= 0 else None

    return _Parser("number, more than 0", convert, check, f"a number such as {example}")


def _yes_no() -> _Parser:
    def convert(text: str) -> bool:
        word = text.lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise _NotParsable("yes or no")

    return _Parser("yes/no", convert, fix="1 (or true, yes, on) or 0 (or false, no, off)")


def _path() -> _Parser:
    return _Parser("path", lambda text: Path(text).expanduser())


def _text() -> _Parser:
    return _Parser("text", str)


def _choice(choices: Sequence[str], pattern: str | None = None, shown: Sequence[str] | None = None) -> _Parser:
    """One of ``choices`` (or a full match of ``pattern``), any case; ``shown`` lists them for users."""
    listed = ", ".join(shown or choices)

    def convert(text: str) -> str:
        word = text.lower()
        if word in choices or (pattern is not None and re.fullmatch(pattern, word)):
            return word
        raise _NotParsable(f"one of {listed}")

    return _Parser("one of " + ", ".join(f"`{c}`" for c in (shown or choices)), convert, fix="one of these")


def _secret() -> _Parser:
    def check(value: str) -> str | None:
        return f"shorter than {MIN_SECRET_CHARS} characters" if len(value) < MIN_SECRET_CHARS else None

    return _Parser(
        f"text, {MIN_SECRET_CHARS} characters or more",
        str,
        check,
        "a long random text, e.g. the output of `python -c 'import secrets; print(secrets.token_hex(32))'`",
    )


def _redis_url() -> _Parser:
    def convert(text: str) -> str:
        if not text.startswith(_REDIS_SCHEMES):
            raise _NotParsable("a Redis URL (redis://, rediss:// or unix://)")
        return text

    return _Parser("URL", convert, fix="a URL such as redis://127.0.0.1:6379/0")


# -- the settings -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """Metadata of one :class:`Settings` field: its variable, parser, shown default and meaning.

    Attributes:
        env: Name of the environment variable.
        parser: Type, conversion and range.
        help: One line for users (README "meaning" column).
        shown_default: The default as users see it (Markdown); ``None``: the field's default.
        lenient: A value that cannot be converted is logged and the default used, instead of
            raising (kept for ``FACE3D_CACHE_SIZE_MB``, which behaved so before).
        secret: Never shown (errors and ``python -m face3d_core.config`` print ``***``).
    """

    env: str
    parser: _Parser
    help: str
    shown_default: str | None = None
    lenient: bool = False
    secret: bool = False


def _setting(
    env: str,
    parser: _Parser,
    help: str,
    *,
    default: Any = None,
    default_factory: Callable[[], Any] | None = None,
    shown_default: str | None = None,
    lenient: bool = False,
    secret: bool = False,
) -> Any:
    meta = {"setting": Setting(env, parser, help, shown_default, lenient, secret)}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Settings:
    """Every ``FACE3D_*`` setting, parsed (see the module docstring for the rules).

    Build it with :meth:`from_env` (or use :func:`get_settings`); the field order is the order
    of the README table.
    """

    cache_dir: Path = _setting(
        "FACE3D_CACHE_DIR",
        _path(),
        "results cache and downloaded weights",
        default_factory=default_cache_dir,
        shown_default="`~/.cache/face3d` (`$XDG_CACHE_HOME/face3d` where set)",
    )
    cache_size_mb: float = _setting(
        "FACE3D_CACHE_SIZE_MB",
        _positive_number("4096"),
        "size limit of the results cache (least recently used entries go first)",
        default=DEFAULT_CACHE_SIZE_MB,
        lenient=True,
    )
    weights_dir: Path | None = _setting(
        "FACE3D_WEIGHTS_DIR", _path(), "a folder with checkpoints you put there by hand", shown_default="unset"
    )
    yunet_path: Path | None = _setting(
        "FACE3D_YUNET_PATH",
        _path(),
        "path of the YuNet face detector ONNX file, used as given (otherwise: the copy shipped in the "
        "package, then looked up like the weights; see [Face detector](#face-detector))",
        shown_default="unset",
    )
    offline: bool = _setting(
        "FACE3D_OFFLINE",
        _yes_no(),
        "`1` (or `true`, `yes`, `on`): never download, only use files on disk",
        default=False,
        shown_default="`0` (downloads allowed)",
    )
    device: str = _setting(
        "FACE3D_DEVICE",
        _choice(("auto", "cpu", "cuda", "mps"), pattern=r"cuda:\d+", shown=("auto", "cpu", "cuda", "cuda:N", "mps")),
        "device of the depth network, e.g. `cuda:1` (auto: CUDA, then MPS, then CPU)",
        default="auto",
    )
    precision: str = _setting(
        "FACE3D_PRECISION",
        _choice(("auto", "fp32", "bf16", "fp16")),
        "precision of the depth network (auto: fp16 on CUDA, fp32 elsewhere); `bf16` is the fast CPU mode, "
        "used only where the CPU has native bf16 (else fp32 with a warning); in the dashboard it is the "
        "precision chosen at first, which each user can change (Exact / Fast)",
        default="auto",
    )
    backend: str = _setting(
        "FACE3D_BACKEND",
        _choice(("auto", "openvino", "onnxruntime", "torch")),
        "CPU runtime (auto: OpenVINO where installed, else ONNX Runtime for MiDaS small, else PyTorch; "
        "compiled runtimes are verified against PyTorch per input size and precision)",
        default="auto",
    )
    host: str = _setting(
        "FACE3D_HOST",
        _text(),
        "interface `python -m dashboard` listens on (see the warning in "
        "[docs/deployment.md](docs/deployment.md#binding-elsewhere))",
        default=DEFAULT_HOST,
    )
    port: int = _setting(
        "FACE3D_PORT", _whole_number(1, 65535, "8080"), "port `python -m dashboard` listens on", default=DEFAULT_PORT
    )
    read_timeout_s: float = _setting(
        "FACE3D_READ_TIMEOUT_S",
        _positive_number("30"),
        "a client must send a request's headers within this many seconds, and its body within this "
        "plus 1 s per 16 KB (slower clients are disconnected)",
        default=DEFAULT_READ_TIMEOUT_S,
    )
    job_workers: int = _setting(
        "FACE3D_JOB_WORKERS",
        _whole_number(1),
        "background inference threads per server process",
        default=1,
    )
    live_streams: int = _setting(
        "FACE3D_LIVE_STREAMS",
        _whole_number(0, example="4"),
        "camera live depth: pages streaming at once per server process (`0`: live depth off; photos can "
        "still be taken with the camera; see [docs/camera.md](docs/camera.md))",
        default=DEFAULT_LIVE_STREAMS,
    )
    heavy_tasks: int = _setting(
        "FACE3D_HEAVY_TASKS",
        _whole_number(1, example="2"),
        "large results made at once per server process (a 3D model at full density, a relief, a report, a large "
        "download); the others wait their turn (see [docs/reliability.md](docs/reliability.md))",
        default=2,
    )
    redis_url: str | None = _setting(
        "FACE3D_REDIS_URL",
        _redis_url(),
        "scale-out mode: results in Redis, the network on Celery workers (see "
        "[docs/deployment.md](docs/deployment.md#several-machines-scale-out))",
        shown_default="unset",
    )
    cache_ttl_s: int = _setting(
        "FACE3D_CACHE_TTL_S",
        _whole_number(1, example="86400"),
        "lifetime of cache entries in Redis, seconds (scale-out mode)",
        default=DEFAULT_CACHE_TTL_S,
        shown_default=f"`{DEFAULT_CACHE_TTL_S}` (30 days)",
    )
    job_heartbeat_s: float = _setting(
        "FACE3D_JOB_HEARTBEAT_S",
        _positive_number("5"),
        "heartbeat of a job's server process or Celery worker, seconds (3 missed beats = the job is interrupted)",
        default=DEFAULT_JOB_HEARTBEAT_S,
    )
    in_use_s: int = _setting(
        "FACE3D_IN_USE_S",
        _whole_number(1, example="3600"),
        "a photo and its results are never evicted from the cache until this many seconds after a page or job "
        "last used them (see [docs/reliability.md](docs/reliability.md))",
        default=DEFAULT_IN_USE_S,
        shown_default=f"`{DEFAULT_IN_USE_S}` (1 hour)",
    )
    secret_key: str | None = _setting(
        "FACE3D_SECRET_KEY",
        _secret(),
        "signs session cookies and job ids; the same on every web worker (unset: generated once into "
        "`<cache dir>/secret_key`, mode 0600, or into Redis in scale-out mode)",
        shown_default="unset",
        secret=True,
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Parse every variable from ``environ`` (default ``os.environ``).

        Raises:
            ConfigError: A variable has a bad value (the message names it and says what to do).
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            setting = setting_of(f)
            text = environ.get(setting.env, "").strip()
            if not text:
                if f.name == "cache_dir":  # its default depends on environ, not only on os.environ
                    values[f.name] = default_cache_dir(environ)
                continue
            values[f.name] = _parse(setting, text, f)
        return cls(**values)


def setting_of(f: dataclasses.Field) -> Setting:
    """Return the :class:`Setting` metadata of a :class:`Settings` field."""
    return f.metadata["setting"]


def _field_default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _parse(setting: Setting, text: str, f: dataclasses.Field) -> Any:
    parser = setting.parser
    redo = f"set it to {parser.fix}, or unset it."
    shown = "'***'" if setting.secret else repr(text)
    try:
        value = parser.convert(text)
    except _NotParsable as exc:
        if setting.lenient:
            default = _field_default(f)
            logger.warning("Ignoring %s=%s (not %s); using %s", setting.env, shown, exc, _show(default))
            return default
        raise ConfigError(f"{setting.env}={shown} is not {exc}: {redo}", variable=setting.env) from None
    problem = parser.check(value)
    if problem is not None:
        raise ConfigError(f"{setting.env}={shown} is {problem}: {redo}", variable=setting.env)
    return value


# -- the process-wide settings ---------------------------------------------------------------

_lock = threading.Lock()
_built: tuple[tuple[tuple[str, str], ...], Settings] | None = None


def environment_snapshot(environ: Mapping[str, str] | None = None) -> tuple[tuple[str, str], ...]:
    """Return the items of ``environ`` that :class:`Settings` depends on, sorted."""
    environ = os.environ if environ is None else environ
    return tuple(sorted((k, v) for k, v in environ.items() if k.startswith(ENV_PREFIX) or k in _DEFAULT_INPUTS))


def get_settings() -> Settings:
    """Return the settings of this process's environment.

    The same object is returned as long as the ``FACE3D_*`` variables (and ``XDG_CACHE_HOME``,
    ``HOME``) stay the same; a change is parsed on the next call.

    Raises:
        ConfigError: A variable has a bad value.
    """
    global _built
    snapshot = environment_snapshot()
    built = _built
    if built is not None and built[0] == snapshot:
        return built[1]
    with _lock:
        if _built is not None and _built[0] == snapshot:
            return _built[1]
        settings = Settings.from_env(dict(snapshot))
        _built = (snapshot, settings)
        return settings


# -- documentation --------------------------------------------------------------------------


def _show(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "`1`" if value else "`0`"
    if isinstance(value, float):
        return f"`{value:g}`"
    return f"`{value}`"


def markdown_table() -> str:
    """Return the README's configuration table (Markdown), one row per variable."""
    rows = ["| variable | type | default | meaning |", "| --- | --- | --- | --- |"]
    for f in dataclasses.fields(Settings):
        setting = setting_of(f)
        shown = setting.shown_default
        if shown is None:
            shown = _show(_field_default(f))
        rows.append(f"| `{setting.env}` | {setting.parser.kind} | {shown} | {setting.help} |")
    return "\n".join(rows) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m face3d_core.config``: check and print the current settings, or print the README table."""
    parser = argparse.ArgumentParser(prog="python -m face3d_core.config", description=main.__doc__)
    parser.add_argument("--markdown", action="store_true", help="print the README's configuration table")
    args = parser.parse_args(argv)
    if args.markdown:
        sys.stdout.write(markdown_table())
        return 0
    try:
        settings = get_settings()
    except ConfigError as exc:
        print(f"face3d: error: {exc}", file=sys.stderr)
        return 1
    for f in dataclasses.fields(Settings):
        value = getattr(settings, f.name)
        if f.name == "redis_url" and value and "@" in value:  # never print the password
            scheme, _, rest = value.partition("://")
            value = f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
        if setting_of(f).secret and value:  # never print a secret
            value = "*** (set)"
        print(f"{setting_of(f).env}={'' if value is None else value}")
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised by tests in a subprocess
    sys.exit(main())
