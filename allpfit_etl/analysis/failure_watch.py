"""Failing loudly when a step's first requests all fail: a server that rejects every request
(one that says 500 about an invalid request, or answers nothing valid) stops the run with one
line quoting it, instead of retrying every conversation and recording them all as failed.
Pure logic: the analyser reports each attempt, the watch says when to stop."""

from __future__ import annotations

from dataclasses import dataclass, field

from allpfit_etl.errors import redact

# The first this many attempts failing with one same error body stop the run: the body names a
# problem with the request or the server, not with one conversation. Small, as the issue asks,
# and large enough that faults of a healthy server (a 500 in a few percent of calls) never line up.
SAME_ERROR_TO_STOP = 10
# None of the first this many attempts succeeding (whatever the errors) stops the run too.
NO_SUCCESS_TO_STOP = 40
MESSAGE_CHARS = 300


def quoted(message: str | None) -> str:
    lines = (message or "").strip().splitlines()
    return redact(lines[0])[:MESSAGE_CHARS] if lines else ""


@dataclass
class FailureWatch:
    same_error_to_stop: int = SAME_ERROR_TO_STOP
    no_success_to_stop: int = NO_SUCCESS_TO_STOP
    succeeded: bool = False
    failures: int = 0
    _first: tuple | None = field(default=None, repr=False)
    _all_same: bool = True

    def success(self) -> None:
        self.succeeded = True

    def failure(self, kind: str, message: str | None = None, hint: str = "") -> str | None:
        """One failed attempt: ``kind`` (``HTTP 500``, ``timeout``, ``invalid answer``) and the
        server's message, if any. Returns the line to stop the run with, or None. Transient
        kinds without a message (timeouts, lost connections) only count towards the second rule."""
        if self.succeeded:
            return None
        self.failures += 1
        body = (kind, quoted(message)) if message else None
        if self.failures == 1:
            self._first = body
        elif body != self._first:
            self._all_same = False
        if self._first is not None and self._all_same and self.failures >= self.same_error_to_stop:
            return (f"the server answered the first {self.failures} requests with the same error ({kind}): "
                    f"{self._first[1]}{hint}")
        if self.failures >= self.no_success_to_stop:
            last = f"{kind}: {quoted(message)}" if message else kind
            return f"none of the first {self.failures} requests got a valid answer (the last: {last}){hint}"
        return None
