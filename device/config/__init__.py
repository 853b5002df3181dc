"""painmon's configuration: one TOML file, validated before anything starts.

``load_config`` reads and validates a file and reports every problem at once, each naming
the file and the dotted key; ``default_config`` is what the demo runs with. The sections are
in ``sections`` and ``sensors``, the wiring checks in ``wiring``, the generated reference in
``reference``, the default locations in ``paths``.
"""

from device.config.loading import (
    ConfigError,
    ConfigProblem,
    default_config,
    load_config,
    reference_markdown,
    validate_config,
)
from device.config.sections import HARDWARE_ENV, MqttConfig, PainmonConfig

__all__ = ["HARDWARE_ENV", "ConfigError", "ConfigProblem", "MqttConfig", "PainmonConfig",
           "default_config", "load_config", "reference_markdown", "validate_config"]
