"""Adaptive polling (seed 000): follow a server's poll hints, back off on errors, never overlap.

:class:`AdaptivePoller` polls a URL (or calls a function) at the interval the answers ask
for: a breaker's ``poll_hint()`` (``poll_interval``, ``retry_in``), ``Retry-After``, a
drained ``RateLimit``; and backs off with jitter when polls fail. The browser's
``stalwart-poller.js`` (served by the ops app under ``/static/``) makes the same decisions
from the same answers. See docs/poller.md.
"""

from ._plan import Hint as Hint
from ._plan import PollAnswer as PollAnswer
from ._plan import PollDecision as PollDecision
from ._plan import PollSettings as PollSettings
from ._plan import decide as decide
from ._plan import rate_limit_wait as rate_limit_wait
from ._plan import read_hint as read_hint
from ._poller import AdaptivePoller as AdaptivePoller
from ._poller import PollChanged as PollChanged
from ._poller import PollFailed as PollFailed
from ._poller import PollResult as PollResult

__all__ = (
    "AdaptivePoller",
    "Hint",
    "PollAnswer",
    "PollChanged",
    "PollDecision",
    "PollFailed",
    "PollResult",
    "PollSettings",
    "decide",
    "rate_limit_wait",
    "read_hint",
)
