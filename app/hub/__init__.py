"""Everything that speaks to JupyterHub lives in this package."""

from hubkeeper.hub.client import HubClient
from hubkeeper.hub.models import HubServer, HubUser

__all__ = ["HubClient", "HubServer", "HubUser"]
