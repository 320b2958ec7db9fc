"""Ingestion: read files → validate against the contracts → normalise → dedupe → write, atomically.

All work on rows is set-based SQL run by DuckDB; Python only plans the queries and, on the error
path alone, re-reads a file to turn a row number into a line number for the message.

One call is one transaction over all its files: either every good row of every file is written
together with one ``ingest_batches`` record, or (on an error, or a crash) nothing is.

Decisions worth knowing:

* Timestamps are stored as naive UTC. A value with an offset ('Z', '+01:00', ' Europe/Berlin') is
  converted; a value without one (including a bare date) is read in ``IngestConfig.timezone``.
  A text column that mixes both kinds within one file is ambiguous (was the export half local?):
  the naive rows are then bad, unless the user set ``ingest.timezone`` in the configuration,
  which says how to read them.
* A file with a header and no data rows is not an error: nothing changes and the report says so.
  A call that reads no rows at all records no batch. A 0-byte file is an error.
* Events without an event_id get ``md5`` of their normalised contract columns (see
  :func:`_event_hash_sql`): a standard hash, so ids stay the same across DuckDB versions.
* Keyed kinds (users, items, campaigns, labels) are upserts: the last row for a key wins (later
  files over earlier ones, later rows over earlier rows); columns the file does not have keep their
  stored values. A row identical to what is stored is a duplicate, not an update.

The package, by concern: ``load`` (the entry points and the one transaction), ``read`` (files into
temp views), ``columns`` (which file column feeds which contract column), ``stage`` (typing and
validating rows in SQL), ``pseudonymise`` (HMAC ids, scrubbed text), ``append`` (events),
``upsert`` (keyed kinds), ``problems`` (bad rows reported, rejected or quarantined), ``results``
and ``faults`` (the fault points of the atomicity tests).

>>> parse_mapping(["user_id=customer", "ts=order_date"])
{'user_id': 'customer', 'ts': 'order_date'}
"""

from churnguard.ingest.faults import FAULT_AFTER_INSERT, FAULT_ENV, FAULT_EXIT_CODE
from churnguard.ingest.load import MAX_PROBLEMS_SHOWN, ingest_files, list_quarantine, parse_mapping
from churnguard.ingest.results import IngestError, IngestReport, Problem

__all__ = [
    "FAULT_AFTER_INSERT",
    "FAULT_ENV",
    "FAULT_EXIT_CODE",
    "MAX_PROBLEMS_SHOWN",
    "IngestError",
    "IngestReport",
    "Problem",
    "ingest_files",
    "list_quarantine",
    "parse_mapping",
]
