"""The review queue of SPEC §8 (``sync_conflicts``): records changed on both sides."""

from __future__ import annotations

import json
from typing import Any

from syncd.store.models import SyncConflict, utcnow


def record(job: str, local_key: str, remote_id: str | None, local_record: dict[str, Any],
           remote_record: dict[str, Any]) -> int:
    """Queue a pair for a person; an open conflict of the same record is refreshed, not
    doubled (each run that meets it again would otherwise add one). Returns its id."""
    local = json.dumps(local_record, ensure_ascii=False, sort_keys=True, default=str)
    remote = json.dumps(remote_record, ensure_ascii=False, sort_keys=True, default=str)
    open_one = SyncConflict.get_or_none(SyncConflict.job == job,
                                        SyncConflict.local_key == local_key,
                                        SyncConflict.status == "open")
    if open_one is not None:
        (SyncConflict.update(remote_id=remote_id, local_record=local, remote_record=remote)
         .where(SyncConflict.id == open_one.id).execute())
        return int(open_one.id)
    row = SyncConflict.create(job=job, local_key=local_key, remote_id=remote_id,
                              local_record=local, remote_record=remote, created_at=utcnow())
    return int(row.id)
