"""The digital twin: a scenario's simulation served as a Kubernetes cluster.

``python -m drpc.twin --scenario default --speed 60 --kubeconfig twin.kubeconfig`` runs the
simulation in (accelerated) real time behind an HTTPS Kubernetes API subset (Deployments and
their ``scale``, Pods and their ``resize``, Nodes, Namespaces, ``metrics.k8s.io``) and a
Prometheus ``/metrics`` endpoint with cAdvisor, kube-state-metrics and Istio metric names, so
that kubectl, the ``kubernetes`` Python client, Prometheus and controllers work against it
unchanged. See ``docs/twin.md``.

Modules: :mod:`~drpc.twin.state` (simulation thread, lock, object store, resourceVersions),
:mod:`~drpc.twin.objects` (state -> Kubernetes JSON), :mod:`~drpc.twin.k8s` (API routes and
validation), :mod:`~drpc.twin.metrics` (exposition), :mod:`~drpc.twin.http` (servers),
:mod:`~drpc.twin.tls` (certificates), :mod:`~drpc.twin.server` (wiring and CLI),
:mod:`~drpc.twin.patch`, :mod:`~drpc.twin.selectors`, :mod:`~drpc.twin.quantity`,
:mod:`~drpc.twin.discovery`, :mod:`~drpc.twin.client` (API objects -> HPA inputs) and
:mod:`~drpc.twin.testing` (start a twin, Prometheus or kubectl in tests).
"""

from drpc.twin.server import Twin, build_parser, main
from drpc.twin.state import TwinOptions, TwinState

__all__ = ["Twin", "TwinOptions", "TwinState", "build_parser", "main"]
