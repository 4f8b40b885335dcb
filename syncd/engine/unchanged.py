"""A run of the content its job's last run synced, into a target left as that run left
it, completes without reading: reading it again would change nothing.

The source tells its whole content's digest from its fingerprint (a file's sha256,
``Source.content_digest``); the target tells a revision that any write into it
changes (``Target.revision``). A completed run whose errors are all its input's own
(bad lines, repeated keys: the same content gives them again) leaves both, with a
digest of the job's configuration, in ``sync_runs.target_mark``. The next run of the
job compares them before it reads: a byte of the file, a key of the job, a row added
or deleted by hand, another run's write, and it reads as always.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from syncd import __version__
from syncd.adapters import AsyncSource, Source, Target
from syncd.engine.plan import JobPlan

if TYPE_CHECKING:
    from syncd.engine.targets import Writer
    from syncd.store import Store
    from syncd.store.models import SyncRun


def job_digest(plan: JobPlan, source: Source | AsyncSource,
               fingerprint: dict[str, Any] | None, target: Writer) -> str | None:
    """What decides the records a run writes: the source's content and the job's
    configuration (and syncd's version). None when the source cannot tell its content
    unread, the target is not a ``Target``, or the job is half of a bidirectional pair
    (whose other half writes the same rows)."""
    if not isinstance(target, Target) or plan.pair is not None or not fingerprint:
        return None
    content = source.content_digest(fingerprint)
    if content is None:
        return None
    text = json.dumps([config_digest(plan, source), content])
    return hashlib.sha256(text.encode()).hexdigest()


def config_digest(plan: JobPlan, source: Source | AsyncSource) -> str:
    """What decides how a job reads and writes, but its source's content: the job's
    configuration, and syncd's version."""
    decisive = {
        "syncd": __version__, "scope": source.scope,
        "source": [plan.source_cls.name, plan.source_options.model_dump(mode="json")],
        "target": [plan.target_cls.name, plan.target_options.model_dump(mode="json")],
        "mapping": plan.config.mapping, "constants": plan.config.constants,
        "on_missing": plan.config.on_missing,
    }
    text = json.dumps(decisive, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def last_alike(store: Store, job: str, target: Writer, digest: str | None) -> SyncRun | None:
    """The job's newest completed run, if it read the content of ``digest`` and left the
    target as it is now."""
    if digest is None or not isinstance(target, Target):
        return None
    last = store.last_completed(job)
    if last is None or not last.target_mark:
        return None
    left = json.loads(last.target_mark)
    if left.get("digest") != digest:
        return None
    revision = target.revision()
    same = revision is not None and left.get("revision") == _as_json(revision)
    return last if same else None


def complete(store: Store, run_id: int, last: SyncRun, dry_run: bool) -> int:
    """Record the run completed with what ``last`` wrote or found counted unchanged, its
    failed records failed again, and leave ``last``'s mark again (not in a dry run);
    returns the records counted."""
    counts = {"processed": last.items_processed, "skipped": last.items_skipped,
              "unchanged": last.items_inserted + last.items_updated + last.items_unchanged,
              "failed": last.items_failed}
    with store.atomic():
        store.copy_errors(last.id, run_id)
        store.advance(run_id, counts, json.loads(last.checkpoint or "null"))
        store.finish(run_id, "completed", target_mark=None if dry_run else last.target_mark)
    return counts["processed"]


def mark(store: Store, run_id: int, target: Writer, digest: str | None) -> str | None:
    """What a completed run leaves for the next, in its last transaction. None after an
    error that is not the input's own (a row the database refused, a passing fault): the
    same content may then write more, e.g. once the table's column is widened."""
    if digest is None or not isinstance(target, Target) or not store.input_errors_only(
            run_id):
        return None
    revision = target.revision()
    if revision is None:
        return None
    return json.dumps({"digest": digest, "revision": _as_json(revision)}, sort_keys=True)


def _as_json(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists, dates text)."""
    return json.loads(json.dumps(value, default=str))
