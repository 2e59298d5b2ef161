"""Configuration: one TOML file loaded into a tree of frozen dataclasses, overridable by environment.

Environment overrides are ``DRIFTSTREAM_<SECTION>__<KEY>=value`` (double underscore between the section
and the key; nested sections chain with double underscores, e.g. ``DRIFTSTREAM_JOIN__TTL_SECONDS=600``).
For the pass-through sections ``[kafka]`` and ``[redis]`` the key is handed to the client untouched; in
the environment, ``DRIFTSTREAM_KAFKA__SASL_MECHANISM=PLAIN`` becomes the librdkafka key
``sasl.mechanism`` (underscores become dots) and ``DRIFTSTREAM_REDIS__SSL_CA_CERTS=...`` stays
``ssl_ca_certs`` (redis-py's keyword). Values from the environment are parsed as TOML scalars when they
look like one (numbers, booleans), else kept as strings.

Unknown keys are an error that names the key and the keys that are allowed, so a typo never silently
falls back to a default. A setting with a fixed set of choices has a ``Literal`` type (detector and test
names come from :mod:`detectors.registry`); the loader refuses any other value and lists the valid ones.
Each section checks its own values in its ``check(where)``, which the loader calls once it is built.

The sections live in :mod:`stream.config.sections`, the loader in :mod:`stream.config.loader`; both are
re-exported here.
"""

from stream.config.loader import (ENV_PREFIX, PASS_THROUGH, _build, _choice, _convert, env_overrides,  # noqa: F401
                                  load_config, redacted)
from stream.config.sections import *  # noqa: F401,F403
