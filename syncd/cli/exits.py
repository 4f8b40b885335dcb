"""The exit codes of the ``syncd`` command line, in one place that imports nothing.

``main``, the foreground commands and the client commands all leave with these;
keeping them here (not in ``main``) lets each import them without a cycle.
"""

EXIT_OK = 0  # done; for ``trigger --wait``, the run completed
EXIT_FAILED = 1  # a run failed or was cancelled; the daemon answered 404, 409 or oddly
EXIT_USAGE = 2  # bad input or config (the daemon answered 400 or 413)
EXIT_UNREACHABLE = 3  # the daemon is not running, not reachable or not ready (503)
EXIT_AUTH = 4  # the token is missing, wrong (401, 403) or unreadable
EXIT_INTERRUPTED = 130  # interrupted while waiting (128 + SIGINT)
EXIT_PIPE = 141  # the output's reader left, as ``syncd runs | head`` (128 + SIGPIPE)
