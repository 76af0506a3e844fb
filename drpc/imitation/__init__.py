"""Distributed students: the central teacher distilled into per-deployment networks, per node.

Modules (import them directly; this package imports nothing, so it stays light):

- :mod:`drpc.imitation.local`: a service's local observation (``LOCAL_FEATURES``).
- :mod:`drpc.imitation.nodes`: :class:`NodeMap`, which node's students decide for which service.
- :mod:`drpc.imitation.students`: the student MLPs, stacked per node (``StudentBank``,
  ``NodeStudents``, ``StudentSet``).
- :mod:`drpc.imitation.dataset`: imitation data as Parquet (readable by ``ray.data``).
- :mod:`drpc.imitation.distill`: behaviour cloning, DAgger, the retraining trigger and online
  re-distillation (``DistillConfig``, ``distill``, ``RetrainTrigger``, ``redistill_online``).
- :mod:`drpc.imitation.checkpoint`: ``drpc_students.json`` + ``students.pt``.
- :mod:`drpc.imitation.policy`: ``StudentPolicy`` for the evaluation harness.
"""
