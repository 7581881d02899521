"""The Runjobs ``code`` of a job: 0 is success; the others are the contract's failure codes
(RESPONSE-WIRE.md), the same for every job type."""

from __future__ import annotations

OK = 0
FAILED = 1  # a job's own failure without a more precise code
UNKNOWN_TYPE = 2
BAD_JOB = 3  # the job's parameters are missing or wrong
NOT_FOUND = 10  # pid, path or quarantine id
REFUSED = 11  # path rules, special file, too big, protected process
UPLOAD_FAILED = 12
NOT_APPROVED = 13  # the script is not in the signed approved library
TIMEOUT = 14
INTERNAL = 99
