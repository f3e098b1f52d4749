"""User-facing errors.

Every error a user can cause (bad path, bad vocabulary, unknown model, missing weights) is raised as
:class:`ZsSegError` with a message that states what is wrong and how to fix it. The CLI prints it as one
line and exits non-zero; library users catch it like any exception.
"""

from __future__ import annotations


class ZsSegError(Exception):
    """An error caused by the user's input or environment; its message names the fix."""
