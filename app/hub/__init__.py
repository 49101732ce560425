"""Everything that speaks to JupyterHub lives in this package."""

from app.hub.client import HubClient
from app.hub.models import HubServer, HubUser

__all__ = ["HubClient", "HubServer", "HubUser"]
