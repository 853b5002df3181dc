"""tools/ha_check.py reads Home Assistant's log: what counts as a warning of its MQTT integration.

The check itself needs a Home Assistant (bash tools/ha-check.sh); these lines are in the log
format of Home Assistant 2026.2, the deprecation among them as it logs it for object_id.
"""

from tools.ha_check import MQTT_LOG_LINE

MQTT_WARNINGS = [
    ("2026-12-05 12:56:19.253 WARNING (MainThread) [homeassistant.components.mqtt.entity] The "
     "configuration for entity sensor.painmon_bed_9_pain_score uses the deprecated option "
     "`object_id` to set the default entity id."),
    ("2026-12-05 12:56:19.253 WARNING (MainThread) [homeassistant.components.mqtt.discovery] "
     "Invalid MQTT device discovery payload for painmon_bed-9, ..."),
    "2026-12-05 12:56:19.253 ERROR (MainThread) [homeassistant.components.mqtt] Failed",
]
OTHERS = [
    ("2026-12-05 12:56:18.129 WARNING (MainThread) [aiohttp_fast_zlib] zlib_ng and isal are "
     "not available, falling back to zlib, performance will be degraded."),
    ("2026-12-05 12:56:19.253 INFO (MainThread) [homeassistant.components.mqtt.discovery] "
     "Processing device discovery for 'painmon_bed-9'"),
    "2026-12-05 12:56:19.253 WARNING (MainThread) [homeassistant.components.mqtt_room] x",
]


def test_the_log_check_tells_mqtt_warnings_from_the_rest():
    assert all(MQTT_LOG_LINE.match(line) for line in MQTT_WARNINGS)
    assert not any(MQTT_LOG_LINE.match(line) for line in OTHERS)
