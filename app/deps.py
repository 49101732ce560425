"""Typed dependencies, in one place, so routes read like a sentence.

    async def stop(name: str, who: CurrentAdmin, hk: StateDep): ...

`CurrentUser` lets every signed-in hub user in (their own servers: `me/...`);
`CurrentReader` lets admins and managers in (read-only pages and API); `CurrentAdmin` only
admins, and on writes made with the browser cookie it also checks the CSRF token.
Anonymous browsers are sent to `login?next=...`; anonymous API calls get 401; a signed-in
person with no role gets 403.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from hubkeeper.auth.dependencies import require_admin, require_reader, require_signed_in
from hubkeeper.auth.principal import Principal
from hubkeeper.directory.spawns import SpawnWatch
from hubkeeper.outbox.record import Outbox
from hubkeeper.state import HubkeeperState


def get_state(request: Request) -> HubkeeperState:
    hk: HubkeeperState = request.app.state.hk
    return hk


StateDep = Annotated[HubkeeperState, Depends(get_state)]
# any signed-in hub user (role user included): their own servers and page only
CurrentUser = Annotated[Principal, Depends(require_signed_in)]
CurrentReader = Annotated[Principal, Depends(require_reader)]
CurrentAdmin = Annotated[Principal, Depends(require_admin)]


def get_outbox(request: Request) -> Outbox | None:
    """Where this app records notifications (None: a state built without one)."""
    return get_state(request).outbox


# the notifications' outbox, for services that emit events (lockdown, console)
OutboxDep = Annotated[Outbox | None, Depends(get_outbox)]


def get_spawns(request: Request) -> SpawnWatch | None:
    """Where a failed start is reported (`spawn.failed`; None: a state built without one)."""
    return get_state(request).spawns


SpawnsDep = Annotated[SpawnWatch | None, Depends(get_spawns)]
