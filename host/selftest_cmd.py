"""``mmfree selftest``: the bring-up self-test of a device (:mod:`mmfree.host.selftest`, ``docs/bringup.md``).

Each step is announced on stderr as it runs; a summary table goes to stdout. Exit status 0 only when every step
passed. ``--record FILE`` keeps every byte of the session in a recording (:mod:`mmfree.host.recording`) that the
``hardware`` tests replay without the device.
"""

import hashlib
import os
import sys
from pathlib import Path

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    parser.add_argument("--device", required=True, metavar="URL",
                        help="the device: serial:///dev/ttyUSB1 (or a port path), sim://icebreaker, golden://, "
                             "socket://host:port")
    parser.add_argument("--model", default="demo",
                        help="a shipped model's name (default demo), a container file, or an HF MMfreeLM folder")
    parser.add_argument("--tokens", type=int, default=16, help="tokens of each demo run, greedy and sampled "
                                                               "(default 16)")
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON to FILE")
    parser.add_argument("--record", metavar="FILE", help="record every byte of the session to FILE (JSON lines)")


def run(args):
    from .models import resolve_model
    from .recording import RecordingTransport
    from .selftest import selftest
    from .transport import open_transport

    model = resolve_model(args.model)
    target = args.device
    if args.record:
        target = RecordingTransport(open_transport(args.device, progress=lambda m: print(m, file=sys.stderr)),
                                    args.device)
    report = selftest(target, model=model, tokens=args.tokens)
    if args.record:
        from .build import git_commit

        spec = {"model": args.model, "tokens": args.tokens}
        if os.path.isfile(args.model):
            spec["model_sha256"] = hashlib.sha256(Path(args.model).read_bytes()).hexdigest()
        target.save(args.record, gateware_hash=report.info.get("gateware_hash"), git_commit=git_commit(),
                    selftest=spec, passed=report.passed)
        print(f"wrote {args.record} ({os.path.getsize(args.record):,} bytes, {len(target.events):,} calls)",
              file=sys.stderr)
    print(report.table())
    if args.json:
        Path(args.json).write_text(report.to_json() + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0 if report.passed else 1
