"""Defaults, in one place so the docs and the code cannot drift apart."""

from __future__ import annotations

# The documented limit is 200 calls/s per API, counted by the server at arrival;
# network jitter bunches requests on the way, so the client paces a little below it.
DEFAULT_RATE_LIMIT = 190
"""Calls per sliding second a 200/s API is paced at by default (95% of it)."""
DOCUMENTED_RATE_LIMIT = 200
"""The documented rate of most of the robot APIs, calls per second (live rooms: 100)."""
# Start k + rate waits until start k is *more* than a second old, by this much (s):
# starts exactly 1.000 s apart both fall in a one-second window closed at either end,
# and a server that stamps arrivals to the millisecond rounds each by up to 1 ms, so
# 2 ms clears its rounding at both ends. It costs 0.2% of the rate when saturated.
# Network jitter between start and arrival is for the 190 (not 200) to absorb.
WINDOW_MARGIN = 0.002

DEFAULT_MAX_RETRIES = 3
# The server gives up on a request after 3 s, so waiting longer than that for an
# answer still leaves room for the network.
DEFAULT_TIMEOUT = 10.0
# Requests of one endpoint in flight at once: rate x latency with room for slow
# answers (190/s x 1.3 s). Waiting for one of these slots is not part of the timeout.
DEFAULT_MAX_IN_FLIGHT = 256
# How long aclose() lets requests already on the wire finish before cancelling them:
# past the server's own 3 s, so a healthy answer is never cut off.
DEFAULT_CLOSE_TIMEOUT = 5.0
# Upper bounds of settings, far beyond any real use, so that absurd values are refused
# at construction rather than overflowing a timer or a buffer at the first call.
MAX_RATE_LIMIT = 1_000_000
MAX_TIMEOUT = 86_400.0

DEFAULT_ADMIN = "administrator"
# How long a generated admin UserSig is valid; it is renewed at half its life.
USERSIG_LIFETIME = 86400

INITIAL_RETRY_DELAY = 0.25
MAX_RETRY_DELAY = 8.0
RATE_LIMITED_RETRY_DELAY = 1.0
# After a frequency refusal the endpoint's whole schedule holds off this long, so the
# server's window (one second) drains before anyone sends again.
RATE_LIMITED_PAUSE = 1.0

ENV_SDKAPPID = "TENCENT_CHAT_SDKAPPID"
ENV_SECRET_KEY = "TENCENT_CHAT_SECRET_KEY"
ENV_ADMIN = "TENCENT_CHAT_ADMIN"
ENV_REGION = "TENCENT_CHAT_REGION"
ENV_BASE_URL = "TENCENT_CHAT_BASE_URL"

# The most times a call may be tried again. Backoff grows to MAX_RETRY_DELAY, so 100
# retries already keep one call going for 6 to 13 minutes of pauses alone (plus each
# attempt's timeout); a larger count is a mistake (a duration typed as a count, say)
# that would hold the call and its endpoint's slot for hours instead of failing.
MAX_RETRIES_LIMIT = 100

# "Each Chat account can create up to 20 chatbot accounts." (openim_robot_http_svc/create_robot)
MAX_ROBOTS_PER_APP = 20
