"""Fault injection for the atomicity tests: with ``CHURNGUARD_FAULT`` set to a fault point, the
process dies there (``os._exit``) so a test can check that nothing half-written survives."""

FAULT_ENV = "CHURNGUARD_FAULT"
FAULT_AFTER_INSERT = "ingest:after-insert"
FAULT_EXIT_CODE = 70
