"""Alerts pushed to chat: Slack, Microsoft Teams, Google Chat, generic webhooks, Alertmanager.

One module per destination kind (:mod:`notify.slack`, :mod:`notify.teams`,
:mod:`notify.google_chat`, :mod:`notify.webhook`, :mod:`notify.alertmanager`) renders a
:class:`~notify.message.Notification`; :mod:`notify.routing` reads which destinations want
which notifications; :mod:`notify.outbox` queues and delivers them with retries;
:mod:`notify.records` keeps the delivery log. :func:`notify.service.start_notifications` wires it
all to the alert lifecycle of this process.
"""
