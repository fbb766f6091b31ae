"""Errors a user can act on. Each message names the problem and the fix in one line."""


class MultiTalkError(Exception):
    """Base class of every error multitalk raises on purpose."""


class MultiTalkInputError(MultiTalkError, ValueError):
    """Bad user input (files, shapes, options), detected before any model work."""


class CheckpointError(MultiTalkError):
    """A weights folder/file that is not what it claims to be: missing, unexpected or misshapen keys."""
