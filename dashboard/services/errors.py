"""The dashboard's own errors, all of them (the core's are in :mod:`face3d_core.errors`).

Every one a page can meet is a :class:`~face3d_core.errors.Face3DError` (a title and one sentence
saying what to do); :class:`LiveRefusal` is the camera's live-frame answer (an HTTP status and a
word the page acts on). :class:`dashboard.jobs.JobCancelled` is a job's own stop signal, not an error.
"""

from __future__ import annotations

from face3d_core.errors import Face3DError

PHOTO_MISSING_MESSAGE = (
    "This photo is no longer stored on the server (the cache was cleared or it was evicted to "
    "save space). Please upload it again."
)


class PhotoMissingError(Face3DError):
    """An upload's key is known to the browser but its data is no longer in the cache."""

    title = "Photo no longer available"

    def __init__(self, message: str = PHOTO_MISSING_MESSAGE):
        super().__init__(message)


class DepthMissingError(Face3DError):
    """A step needs a depth map that has not been computed yet."""

    title = "Depth map not ready"


class MeasureError(Face3DError):
    """A face cannot be measured, or two clicked points cannot be measured between."""

    title = "Cannot measure"


class ServerBusyError(Face3DError):
    """Too much heavy work is waiting for its turn (:mod:`~dashboard.services.heavy`): try again shortly."""

    title = "The server is busy"

    def __init__(self, message: str = "The server is busy making other large results; please try again in a minute."):
        super().__init__(message)


class NothingSelectedError(Face3DError):
    """The user pressed a button before choosing what to work on."""

    title = "Nothing to work on yet"


class ComparisonMissingError(Face3DError):
    """A comparison the page names is not stored (any more), or not one of the session's."""

    title = "Comparison no longer available"


class JobQueueError(Face3DError):
    """The job queue (Redis) cannot be reached, so a job cannot be started."""

    title = "Job queue unavailable"


class LiveRefusal(Exception):
    """A frame that is not computed, with what the page should do.

    Attributes:
        status: HTTP status (400, 413, 429 or 503).
        code: A short word the page acts on: ``frame`` (a bad frame), ``in-flight``, ``rate``,
            ``busy``, ``dropped``, ``loading``, ``failed`` or ``off``.
        message: One sentence for the user.
        retry_after_s: When to send the next frame; None: stop the live view.
    """

    def __init__(self, status: int, code: str, message: str, retry_after_s: float | None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s
