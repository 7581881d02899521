"""Sensor policy (what the Garrison agents' sensors do, per group) and per-station sensor
status (from the stations' latest ``sensor_health`` event)."""
