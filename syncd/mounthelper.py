"""``syncd-mount``: the privileged helper that mounts a drive for the unprivileged daemon.

Run by ``syncd-mount@.service`` (started by udev) as root with ``CAP_SYS_ADMIN`` only:
``syncd-mount mount /dev/sdb1 /run/syncd-media/sdb1`` mounts it read-only, nosuid,
nodev, noexec (and nosymfollow); filesystems without owners (FAT, exFAT, NTFS) are
mounted with their files owned by the ``syncd`` user, so the daemon can read them.
``syncd-mount unmount /run/syncd-media/sdb1`` undoes it. It imports nothing of syncd
but the mount functions, and takes no input but its arguments.
"""

from __future__ import annotations

import pwd
import re
import subprocess
import sys
from pathlib import Path

from syncd.triggers.drive import DriveError, mount_readonly, unmount

OWNERLESS = frozenset({"vfat", "exfat", "ntfs", "ntfs3", "msdos"})
DEVICE = re.compile(r"/dev/[A-Za-z0-9_.-]+")
MEDIA = Path("/run/syncd-media")
USER = "syncd"


def owner_options(fstype: str, user: str = USER) -> tuple[str, ...]:
    """``uid=…,gid=…`` with masks for a filesystem that has no owners of its own."""
    if fstype not in OWNERLESS:
        return ()
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return ()
    return (f"uid={entry.pw_uid}", f"gid={entry.pw_gid}", "fmask=0137", "dmask=0027")


def fstype_of(devnode: str) -> str:
    result = subprocess.run(["blkid", "-p", "-o", "value", "-s", "TYPE", devnode],
                            capture_output=True, text=True, check=False, timeout=30,
                            stdin=subprocess.DEVNULL)
    return result.stdout.strip()


def checked_target(value: str) -> Path:
    target = Path(value)
    if target.parent != MEDIA or target.name in ("", ".", ".."):
        raise DriveError(f"mount points live directly in {MEDIA}, not {value}")
    return target


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        if len(args) == 3 and args[0] == "mount" and DEVICE.fullmatch(args[1]):
            fstype = fstype_of(args[1])
            options = mount_readonly(args[1], fstype, checked_target(args[2]),
                                     owner_options(fstype))
            print(f"mounted {args[1]} ({fstype}) on {args[2]}: {','.join(options)}")
            return 0
        if len(args) == 2 and args[0] == "unmount":
            target = checked_target(args[1])
            unmount(target)
            if target.is_dir():
                target.rmdir()
            return 0
    except (DriveError, OSError) as exc:
        print(f"syncd-mount: {exc}", file=sys.stderr)
        return 1
    print("usage: syncd-mount mount /dev/NAME /run/syncd-media/NAME | "
          "syncd-mount unmount /run/syncd-media/NAME", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
