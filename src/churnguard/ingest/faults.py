"""Fault injection for the atomicity tests: with ``CHURNGUARD_FAULT`` set to a fault point, the
process dies there (``os._exit``) so a test can check that nothing half-written survives.

:data:`FAULT_POINTS` declares every fault point of ingestion with the kinds whose loads pass
through it; tests/test_ingest.py kills a real process at each point for each of those kinds (into
an empty table and into one that holds rows), so a point added here is crash-tested without
another test. A ``FAULT_*`` constant that names a point (``"ingest:..."``) must be declared there.

>>> sorted(FAULT_POINTS)
['ingest:after-insert']
"""

from churnguard.schema import KINDS

FAULT_ENV = "CHURNGUARD_FAULT"
FAULT_EXIT_CODE = 70

# After every file of the call is written (appended, upserted, quarantined) and the batch is
# recorded, before the commit: the last moment a crash could leave half a load.
FAULT_AFTER_INSERT = "ingest:after-insert"

# Every fault point and the kinds that pass through it.
FAULT_POINTS: dict[str, tuple[str, ...]] = {
    FAULT_AFTER_INSERT: KINDS,
}
