"""The delivery core: from the exporter's hand-off to PostHog's answer, through memory and the spool.

The exporter hands batches to a ``dispatch.Dispatcher``; its threads (``loop``) encode them
(``handoff``, ``encoding``), keep them in memory (``memory``, ``line``) or on disk (``spool``,
``spool_access``), send them one request at a time (``schedule``, ``client``, ``protocol``,
``sender``, ``http``) with retries (``retry``), and finish at exit (``exit``). Nothing here knows
about the operations or the OTel SDK's records beyond the hand-off.
"""
