"""A simulated SaaS-to-ERP stack that emits real OpenTelemetry spans.

CRM, CPQ, billing, payments, catalog and support talk to a cloud ERP through middleware
(integration-api, event-router, batch-reconciler, canonical-mapper). ``sample_data.simulator``
runs it over simulated time, seeded and reproducible, with injected incidents recorded in a
labels file; ``sample_data.cli`` is the ``seamwatch simulate`` command.
"""
