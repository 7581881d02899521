"""The admin CLI's command groups, one module per part of the admin API."""
