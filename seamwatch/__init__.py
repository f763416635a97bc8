"""Seamwatch: integration-health observability for SaaS-to-ERP stacks."""

__version__ = "0.1.0"
