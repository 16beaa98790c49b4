"""The one error of the offline tools' planning, raised wherever planning stops (reading the
stack file, the TLS stand-ins, the program under mocks) and caught where people read it."""

from __future__ import annotations


class PlanError(Exception):
    """The stack cannot be planned; str() is the one line for people."""

    def __init__(self, message: str, registered: int = 0) -> None:
        super().__init__(message)
        self.registered = registered  # resources the program registered before it stopped
