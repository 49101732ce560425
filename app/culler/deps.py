"""The culler as a route dependency: `async def run(who: CurrentAdmin, culler: CullerDep)`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from hubkeeper.culler.service import Culler


def get_culler(request: Request) -> Culler:
    """The app's culler (`hk.culler`, built by create_app); RuntimeError if it has none."""
    culler: Culler | None = request.app.state.hk.culler
    if culler is None:
        raise RuntimeError("this Hubkeeper was built without a culler")
    return culler


CullerDep = Annotated[Culler, Depends(get_culler)]
