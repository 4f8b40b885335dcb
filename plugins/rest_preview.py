"""The REST target's dry run: what each change would send, read but never written.

A create shows its request with the final name (``prepare`` already chose it, so a
rename is reported), an update is checked for changes on the remote's side as the
real run checks it (a GET: reads are free), so conflicts are counted the way the real
run counts them. URLs show every credential as ``***``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from syncd.adapters import Change, ItemError, Planned, Result, is_unsent

from .rest_payload import remote_hash, render, wrap

if TYPE_CHECKING:
    from .rest_target import RestTarget


async def preview(target: RestTarget, change: Change) -> Result:
    """What ``target.apply(change)`` would come to, and the requests it would send."""
    failed = target._unnamed.pop(change.key, None)
    if failed is not None:
        return Result.failed(ItemError(failed.error_type, failed.code, str(failed),
                                       change.item, retryable=failed.retryable))
    if change.kind == "create":
        return _create(target, change)
    if change.kind == "update":
        return await _update(target, change)
    o = target.options
    if change.kind == "delete" and o.delete is not None and change.remote_id is not None:
        url = target.client.shown_url(render(o.delete.path, change.record, change.remote_id))
        return Result("deleted", change.remote_id,
                      planned=Planned(((o.delete.method, url, None),)))
    return Result.failed(ItemError("target", "unsupported", f"{change.kind} is not "
                                   "supported by the REST target", change.item))


def _request(target: RestTarget, method: str, path: str, change: Change,
             remote_id: str | None = None) -> tuple[str, str, Any]:
    body = wrap(target.options.body_path, target._body(change))
    return method, target.client.shown_url(render(path, change.record, remote_id)), body


def _create(target: RestTarget, change: Change) -> Result:
    o, sent = target.options, change.sent or {}
    renamed = None
    if sent.get("name") and sent.get("base") and sent["name"] != sent["base"]:
        renamed = (str(sent["base"]), str(sent["name"]))
    if sent.get("fail"):
        return Result.failed(ItemError(
            "conflict", "name_taken", f"{o.name_field} {sent['name']!r} is taken on the "
            "remote by a record syncd did not create (on_name_conflict = \"fail\")",
            change.item))
    if sent.get("adopt"):
        remote_id = str(sent["adopt"])
        requests = () if o.update is None else (
            _request(target, o.update.method, o.update.path, change, remote_id),)
        return Result("adopted", remote_id, planned=Planned(requests, renamed))
    return Result("created", None, planned=Planned(
        (_request(target, o.create.method, o.create.path, change),), renamed))


async def _update(target: RestTarget, change: Change) -> Result:
    o, remote_id = target.options, change.remote_id
    assert remote_id is not None
    if o.update is None:
        return Result.failed(ItemError("conflict", "not_updatable", f"key {change.key!r} "
                                       "changed, and the target has no update", change.item))
    if o.conflict != "local" and change.remote_hash is not None and not is_unsent(remote_id):
        remote = await target._read(change, remote_id)
        seen = remote_hash(remote, target.fields)
        if seen != change.remote_hash:
            decided = target._decide(change, remote, seen)
            if decided is not None:
                return decided
    return Result("updated", remote_id, planned=Planned(
        (_request(target, o.update.method, o.update.path, change, remote_id),)))
