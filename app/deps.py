"""Typed dependencies, in one place, so routes read like a sentence.

    async def stop(name: str, who: CurrentAdmin, hk: StateDep): ...

`CurrentReader` lets admins and managers in (read-only pages and API); `CurrentAdmin` only
admins, and on writes made with the browser cookie it also checks the CSRF token.
Anonymous browsers are sent to `login?next=...`; anonymous API calls get 401; a signed-in
person with no role gets 403.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from hubkeeper.auth.dependencies import require_admin, require_reader
from hubkeeper.auth.principal import Principal
from hubkeeper.state import HubkeeperState


def get_state(request: Request) -> HubkeeperState:
    hk: HubkeeperState = request.app.state.hk
    return hk


StateDep = Annotated[HubkeeperState, Depends(get_state)]
CurrentReader = Annotated[Principal, Depends(require_reader)]
CurrentAdmin = Annotated[Principal, Depends(require_admin)]
