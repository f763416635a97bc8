"""The features whose routes make up the API; importing this module registers them."""
