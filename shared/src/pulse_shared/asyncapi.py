"""The committed AsyncAPI documents (docs/asyncapi/<service>.json|yaml) as stable text.

A service's ``asyncapi.specification()`` builds FastStream's AsyncAPI of its router on a
never-connected broker at :data:`DOC_BOOTSTRAP`; :func:`render` turns it into the text the
docs hold (keys sorted, so a regenerated document only differs where the contract does).
"""

from __future__ import annotations

import json
from typing import Any

#: The broker address the documents name (the compose service name); never connected.
DOC_BOOTSTRAP = "kafka:9092"


def render(specification: Any, fmt: str = "json") -> str:
    """``specification`` (a FastStream ``AsyncAPI``) in ``json`` or ``yaml``, keys sorted."""
    document = json.loads(specification.to_specification().to_json())
    if fmt == "yaml":
        import yaml  # FastStream's YAML export needs PyYAML as well

        return str(yaml.safe_dump(document, sort_keys=True, allow_unicode=True, width=100))
    return json.dumps(document, indent=2, sort_keys=True) + "\n"
