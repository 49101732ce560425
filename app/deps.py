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
from hubkeeper.state import HubkeeperState


def get_state(request: Request) -> HubkeeperState:
    hk: HubkeeperState = request.app.state.hk
    return hk


StateDep = Annotated[HubkeeperState, Depends(get_state)]
# any signed-in hub user (role user included): their own servers and page only
CurrentUser = Annotated[Principal, Depends(require_signed_in)]
CurrentReader = Annotated[Principal, Depends(require_reader)]
CurrentAdmin = Annotated[Principal, Depends(require_admin)]
