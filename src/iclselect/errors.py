"""The user's mistakes, told apart from iclselect's own: only these reach the user as one line."""

from __future__ import annotations


class UsageError(ValueError):
    """A setting, option or request the user can fix: its message is one line naming the fix.

    A ValueError, so that a Python caller's `except ValueError` still catches it; the CLI
    prints it (and InputError) without a traceback, and any other exception with one."""
