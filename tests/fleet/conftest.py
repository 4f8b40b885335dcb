from tests.fleet.cluster import cluster, fleet_db

__all__ = ["cluster", "fleet_db"]
