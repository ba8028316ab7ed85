"""meterd on PostgreSQL: several nodes on one database, and the database restarted under load."""
