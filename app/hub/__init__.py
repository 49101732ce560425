"""Everything that speaks to JupyterHub lives in this package."""

from hubkeeper.hub.client import HubClient
from hubkeeper.hub.models import HubServer, HubUser
from hubkeeper.hub.servers import FileRange, ServerGateway, ServerUnreachable

__all__ = ["FileRange", "HubClient", "HubServer", "HubUser", "ServerGateway", "ServerUnreachable"]
