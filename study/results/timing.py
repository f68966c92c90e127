"""Response times: the server's clock is the authority, the browser's a refinement.

The server measures every answer from the moment it first sent the trial page to the moment
it received the answer; nobody outside can shorten or lengthen that. The browser measures
from the stimulus being painted to the click, which leaves out the network and the loading,
so an honest browser's time is never longer than the server's. A client time is therefore
used only when it is present and not longer than the server's; otherwise (no script, a
forged field, a bot that reports 5000 ms after answering in 100) the server's time stands
and the answer is flagged as having an inconsistent client time.
"""

from datetime import datetime


def server_response_ms(shown_at: datetime, received_at: datetime) -> int:
    """Milliseconds from the server sending the trial to it receiving the answer."""
    return max(0, round((received_at - shown_at).total_seconds() * 1000))


def client_time_consistent(client_ms: int | None, server_ms: int) -> bool:
    """Whether the browser's time can refine the server's: present and not longer."""
    return client_ms is not None and client_ms <= server_ms


def response_ms(client_ms: int | None, server_ms: int) -> int:
    """The response time analyses and exclusions use: the client's where consistent with
    the server's, else the server's."""
    return client_ms if client_time_consistent(client_ms, server_ms) else server_ms
