"""The features whose routes make up the API; importing this module registers them."""

from detectors.alerts_api import routes as alert_routes
from lineage.api import routes as lineage_routes
from notify.api import routes as delivery_routes
from seamwatch.api import API_ROUTE_FACTORIES

API_ROUTE_FACTORIES.append(alert_routes)
API_ROUTE_FACTORIES.append(lineage_routes)
API_ROUTE_FACTORIES.append(delivery_routes)
