"""The features whose routes make up the API; importing this module registers them."""

from detectors.alerts_api import routes as alert_routes
from seamwatch.api import API_ROUTE_FACTORIES

API_ROUTE_FACTORIES.append(alert_routes)
