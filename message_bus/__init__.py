"""The message bus: kombu transport, RPC and events, and the contracts every tier shares.

``messages`` (the typed messages) and ``lifecycle`` (the instance state machine) are
the contract between the tiers; ``bus`` carries them.
"""

from message_bus.bus import Bus
from message_bus.errors import BusError, CallTimeout, MessageRejected, RemoteError

__all__ = ["Bus", "BusError", "CallTimeout", "MessageRejected", "RemoteError"]
