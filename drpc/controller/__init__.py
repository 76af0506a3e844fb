"""The live controller: Prometheus in, the policy endpoint (or the HPA fallback) in the middle,
safety rules, then the Kubernetes API out (``drpc controller``).

One module per concept:

* :mod:`~drpc.controller.config` -- :class:`ControllerConfig`, every setting, loadable from YAML;
* :mod:`~drpc.controller.metrics` -- PromQL per snapshot field, staleness, :class:`Snapshot`;
* :mod:`~drpc.controller.policy_client` -- ``POST /v1/decide`` with retries, HPA fallback;
* :mod:`~drpc.controller.safety` -- bounds, steps, cooldowns, stabilisation, allowlist;
* :mod:`~drpc.controller.apply` -- ``deployments/scale`` and ``pods/resize`` with retries;
* :mod:`~drpc.controller.audit` -- one JSON line per action;
* :mod:`~drpc.controller.loop` -- :class:`Controller` (``sync_once``, ``run``) and its metrics;
* :mod:`~drpc.controller.cli` -- ``main(argv)`` for ``drpc controller``.
"""

from __future__ import annotations

from drpc.controller.config import ConfigError, ControllerConfig, ServiceBounds, load_config

__all__ = ["ConfigError", "ControllerConfig", "ServiceBounds", "load_config"]
