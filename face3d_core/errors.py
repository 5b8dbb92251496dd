"""Typed, user-facing errors of face3d.

Every error a user can cause or fix derives from :class:`Face3DError`. Its ``title`` says what
is wrong and its message says what to do. There are two audiences:

* :attr:`Face3DError.user_message` (the exception text) is what the CLI prints: the person runs
  face3d on their own machine, so it may name folders and files there;
* :attr:`Face3DError.web_message` is what a web page shows to someone who does not run the
  server: no server paths and no raw exception text (those go to the server's log). It is the
  ``web_message`` given when raising, else the class's :attr:`~Face3DError.default_web_message`
  (for errors whose messages always carry server internals), else the user message with its
  paths cut (:func:`without_paths`).

Anything else escaping the core is a bug.
"""

from __future__ import annotations

import re

#: An absolute path (POSIX or Windows) in a message; its last part is group 1.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])(?:/|[A-Za-z]:\\)(?:[^\s/\\'\"]+[/\\])*([^\s/\\'\"]*)")


def without_paths(text: str) -> str:
    r"""``text`` with every absolute path replaced by its last part (a file's name, a folder's name).

    Example:
        >>> without_paths("Put it in /srv/face3d/weights or C:\\w\\x.pt (see https://example.org/a/b).")
        'Put it in weights or x.pt (see https://example.org/a/b).'
    """
    return _ABSOLUTE_PATH.sub(lambda match: match.group(1) or "a folder on the server", text)


#: Most characters of a value that a message repeats back (a typed or sent value can be megabytes).
MAX_SHOWN_CHARS = 40


def shown_value(value: object, limit: int = MAX_SHOWN_CHARS) -> str:
    """A value as a message repeats it: text quoted (``repr``), anything cut to about ``limit`` characters.

    Example:
        >>> shown_value("abc"), shown_value(2.5), shown_value("x" * 100, 8)
        ("'abc'", '2.5', "'xxxxxxxx...'")
    """
    try:
        text = value if isinstance(value, str) else str(value)
    except ValueError:  # an int of more digits than Python will print
        return "a number too long to show"
    cut = text[:limit] + "..." if len(text) > limit else text
    return repr(cut) if isinstance(value, str) else cut


class Face3DError(Exception):
    """Base class of every user-facing face3d error.

    Args:
        message: The message for the user (what happened, what to do).
        web_message: The same for a user of the web app, who must not learn the server's
            folders (default: ``message`` with absolute paths cut to their last part).
    """

    title = "Something went wrong"
    #: The web message of a class whose messages always name server internals (``None``: see above).
    default_web_message: str | None = None

    def __init__(self, *args: object, web_message: str | None = None) -> None:
        super().__init__(*args)
        self._web_message = web_message

    def __reduce__(self):  # keep web_message through pickling (job results cross processes)
        return (_rebuild_error, (type(self), self.args, self.__dict__))

    @property
    def user_message(self) -> str:
        """The message to show to a user (the exception text); the CLI prints it."""
        return str(self)

    @property
    def web_message(self) -> str:
        """The message to show on the web page: no server paths, no raw exception text."""
        given = getattr(self, "_web_message", None)
        if given is not None:
            return given
        return self.default_web_message or without_paths(self.user_message)


def _rebuild_error(cls: type, args: tuple, state: dict) -> Face3DError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class InvalidImageError(Face3DError, ValueError):
    """The uploaded or given file is not a usable JPEG/PNG photo."""

    title = "This file can't be used"


class InvalidDepthError(Face3DError, ValueError):
    """A given depth map file is unreadable or not a usable ``(H, W)`` array of numbers."""

    title = "This depth map can't be used"


class NoFaceFoundError(Face3DError):
    """No face was detected; the caller may go on with the whole image instead."""

    title = "No face found"


class WeightsUnavailableError(Face3DError):
    """A network's weights are neither on disk nor downloadable; the message says where to put them.

    Attributes:
        file_name: Name of the missing file (e.g. ``midas_v21_small_256.pt``), or ``None``.
        url: Its official download URL, or ``None`` (a page offers both, and the download command).
    """

    title = "Model weights missing"

    def __init__(
        self,
        *args: object,
        web_message: str | None = None,
        file_name: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(*args, web_message=web_message)
        self.file_name = file_name
        self.url = url


class WeightsIntegrityError(WeightsUnavailableError):
    """A weights file does not match its published SHA-256 (the bad file is not kept)."""

    title = "Model weights corrupt"


class UnknownModelError(Face3DError, KeyError):
    """A model name that is not in the registry."""

    title = "Unknown model"

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class ConfigError(Face3DError, ValueError):
    """A ``FACE3D_*`` environment variable has a bad value; the message names it and says what to do.

    Attributes:
        variable: Name of the variable (e.g. ``"FACE3D_JOB_WORKERS"``), or ``None``.
    """

    title = "Configuration problem"

    def __init__(self, message: str, *, variable: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable


class CacheError(Face3DError):
    """The result cache cannot be read or written (disk full, read-only, corrupt)."""

    title = "Cache problem"
    default_web_message = (
        "The server could not store or read results (its storage is full, read-only or unreachable). "
        "Please try again later; if it keeps happening, tell the server's administrator."
    )


class ExportError(Face3DError):
    """A 3D model or depth map could not be exported."""

    title = "Export failed"
