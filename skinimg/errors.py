"""The exception type for user-facing errors.

A :class:`SkinImgError` names the file (when there is one) and the reason in
plain words.  The CLI prints ``str(error)`` as a single line and exits with a
non-zero code; programming errors are left as tracebacks because they are bugs.
"""

from __future__ import annotations

import os

__all__ = ["SkinImgError", "ImageArrayError"]


class SkinImgError(Exception):
    """A problem with the user's input or environment (file, reason).

    Parameters
    ----------
    reason : str
        What is wrong, in plain words ("not an image file", "truncated").
    path : str or os.PathLike, optional
        The file concerned.  Shown as given (callers pass paths relative to
        the input root so messages do not leak home directories).

    Examples
    --------
    >>> str(SkinImgError("truncated image", path="visit/a.jpg"))
    'visit/a.jpg: truncated image'
    """

    def __init__(self, reason: str, path: str | os.PathLike | None = None):
        self.reason = str(reason)
        self.path = None if path is None else os.fspath(path)
        super().__init__(self.reason if self.path is None else f"{self.path}: {self.reason}")

    def with_path(self, path: str | os.PathLike) -> "SkinImgError":
        """Return the same error re-labelled with another path (e.g. a relative one)."""
        return SkinImgError(self.reason, path=path)


class ImageArrayError(SkinImgError, ValueError, TypeError):
    """An array that is not an image the function can use: wrong shape or dtype.

    Raised by the one gate of the library, :func:`skinimg.io.check_rgb` (and by
    :func:`skinimg.color.to_float` for a dtype it cannot scale).  It is a :class:`SkinImgError`
    (one line in the CLI) and also a ``ValueError`` (wrong shape) and a ``TypeError`` (wrong
    dtype), so code written for NumPy's and scikit-image's conventions catches it as well.
    """
