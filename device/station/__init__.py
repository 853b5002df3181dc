"""The ward station: the ward side of painmon's MQTT API.

``painmon station`` subscribes to every device under the topic prefix (an MQTT 5 shared
subscription, so several station processes split the load), validates each payload against the
published JSON Schemas, stores it (SQLite by default, PostgreSQL for a hospital) and serves the
ward screen: one tile per bed, live, and a bed view with its last 24 hours.

Layering: the station reads the public API only (``device.comms.schemas`` through
``device.station.api``) and the device configuration types; nothing imports the station except
the command line.
"""
