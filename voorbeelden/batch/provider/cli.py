"""The Batch API options of ``voorbeelden batch`` and what they run: ``--via openai-batch``,
``--export-requests``, ``--import-results`` and ``--cancel``.

Kept out of :mod:`voorbeelden.commands.batch` so the online command stays as it was: it adds these options
with :func:`add_arguments` and hands over to :func:`run` first, which returns None when none of them is given.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from voorbeelden.redact import redact, redact_obj

__all__ = ["add_arguments", "run"]

VIAS = ("online", "openai-batch")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from voorbeelden.commands._options import at_least_one, one_of, positive

    g = p.add_argument_group(
        "Batch API (OpenAI's /v1/batches at half price within 24 h; or files for offline engines such as "
        "vllm run-batch)"
    )
    g.add_argument(
        "--via",
        type=one_of(VIAS, "--via"),
        default="online",
        help="online (default): call the endpoint now; openai-batch: upload the requests as Batch API files, "
        "poll, and write the results when the batches end (sequential, parallel or bounded only)",
    )
    g.add_argument(
        "--export-requests",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the Batch API request lines of every term not yet in --out to FILE and stop (nothing is sent)",
    )
    g.add_argument(
        "--import-results",
        type=Path,
        default=None,
        metavar="FILE",
        help="read Batch API output lines (OpenAI's or vllm run-batch's) from FILE and write the terms they "
        "complete to --out",
    )
    g.add_argument(
        "--cancel",
        action="store_true",
        help="cancel the live batches named in --out's state file (OUT.batches.json) and stop",
    )
    g.add_argument(
        "--poll-interval", type=positive, default=30.0, metavar="S", help="seconds between polls (default 30)"
    )
    g.add_argument(
        "--batch-rounds",
        type=at_least_one,
        default=3,
        metavar="N",
        help="sends per line at most: failed lines go into up to N-1 follow-up batches (default 3); with "
        "--retry-failed they are sent online at once instead",
    )
    g.add_argument(
        "--batch-max-lines", type=at_least_one, default=50_000, metavar="N", help=argparse.SUPPRESS
    )
    g.add_argument("--batch-max-mb", type=positive, default=200.0, metavar="MB", help=argparse.SUPPRESS)
    g.add_argument(
        "--sim-batch-delay",
        type=positive,
        default=300.0,
        metavar="S",
        help="embedded simulator: model seconds a batch is in progress (default 300; times --time-scale)",
    )
    g.add_argument(
        "--sim-batch-line-errors",
        type=_fraction,
        default=0.0,
        metavar="P",
        help="embedded simulator: share of batch lines answered with HTTP 500 (0..1)",
    )


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}")
    return value


def wanted(args: argparse.Namespace) -> bool:
    return bool(
        getattr(args, "via", "online") != "online"
        or getattr(args, "export_requests", None)
        or getattr(args, "import_results", None)
        or getattr(args, "cancel", False)
    )


def _fail(message: str) -> int:
    print(f"voorbeelden batch: {redact(message)}", file=sys.stderr)
    return 2


def _config(args: argparse.Namespace) -> Any:
    from voorbeelden.config import GeneratorConfig

    cfg = GeneratorConfig()
    cfg = cfg.with_model(args.model) if args.model else cfg
    if args.call_timeout is not None:
        cfg = cfg.replace(call_timeout_s=args.call_timeout)
    return cfg


def _check(args: argparse.Namespace) -> str | None:
    """A message for a combination that cannot run, before anything starts or changes."""
    from voorbeelden.batch.provider.lines import check_strategy

    modes = [
        name
        for name, on in (
            ("--export-requests", args.export_requests),
            ("--import-results", args.import_results),
            ("--cancel", args.cancel),
        )
        if on
    ]
    if len(modes) > 1:
        return f"{' and '.join(modes)} cannot be combined; give one"
    try:
        check_strategy(args.strategy)
    except ValueError as err:
        return str(err)
    if args.import_results is not None and not args.import_results.is_file():
        return f"--import-results {args.import_results} is not a file"
    if args.export_requests is not None and args.export_requests.resolve() in (
        args.input.resolve(),
        args.out.resolve(),
    ):
        return f"--export-requests {args.export_requests} is the input or --out; choose another file"
    return None


def run(args: argparse.Namespace, check_before_work: Any, consented: Any) -> int | None:
    """Run the Batch API mode the options ask for (an exit code), or None when they ask for none."""
    if not wanted(args):
        return None
    problem = _check(args)
    if problem:
        return _fail(problem)
    try:
        spec = check_before_work(args)
    except ValueError as err:
        return _fail(str(err))
    if args.export_requests is not None or args.import_results is not None:
        return _offline(args)
    if not args.cancel and not consented(args, spec):
        from voorbeelden.consent import EXIT_NO_CONSENT

        return EXIT_NO_CONSENT
    return _online_api(args, spec)


def _offline(args: argparse.Namespace) -> int:
    from voorbeelden.batch.provider.offline import export_requests, import_results

    try:
        if args.export_requests is not None:
            s = export_requests(
                args.input,
                args.export_requests,
                config=_config(args),
                strategy=args.strategy,
                out=args.out,
                retry_failed=args.retry_failed,
            )
            print(
                f"voorbeelden batch: wrote {s.lines} request lines ({s.terms} terms; {s.skipped} already in "
                f"{args.out}, {s.invalid} invalid) to {args.export_requests}; run them with e.g. `vllm run-batch "
                f"-i {args.export_requests} -o RESULTS --model MODEL`, then --import-results RESULTS",
                file=sys.stderr,
            )
            return _print_json(args, s.to_dict(), 0)
        s = import_results(
            args.input,
            args.import_results,
            out=args.out,
            config=_config(args),
            strategy=args.strategy,
            retry_failed=args.retry_failed,
            fsync=args.fsync,
        )
    except ValueError as err:
        return _fail(str(err))
    print(
        f"voorbeelden batch: imported {s.terms} terms ({s.complete} complete, {s.failed} with a part lost) into "
        f"{args.out}; {s.missing} terms lack lines in {args.import_results} (not written; export again to send "
        f"them), {s.unknown_lines} lines of no term in this input, {s.skipped} already done",
        file=sys.stderr,
    )
    code = 0 if s.failed == 0 and s.missing == 0 else (1 if s.complete + s.partial == 0 else 3)
    return _print_json(args, s.to_dict(), code)


def _print_json(args: argparse.Namespace, data: dict[str, Any], code: int) -> int:
    if args.json:
        json.dump(redact_obj({**data, "exit_code": code}), sys.stdout, indent=2)
        print()
    return code


def _online_api(args: argparse.Namespace, spec: Any) -> int:
    from voorbeelden.backend import open_backend
    from voorbeelden.commands.batch import _report
    from voorbeelden.syncrun import run_sync

    sim = {"profile": args.sim_profile, "time_scale": args.time_scale, "process": args.sim_process}
    terms: list[dict[str, Any]] = []
    with open_backend(spec, announce=sys.stderr, **sim) as backend:
        if backend.simulated:
            _configure_sim(backend.base_url, args)
        embedded = backend.simulated and spec.kind != "real"
        try:
            data = run_sync(_against(args, backend, embedded, terms))
        except KeyboardInterrupt:
            _interrupted(args, embedded)
            return 130
        except ValueError as err:
            return _fail(str(err))
    if data is None:  # --cancel
        return 0
    return _report_api(args, data, terms, _report)


async def _against(
    args: argparse.Namespace, backend: Any, embedded: bool, terms: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The run (or the cancel) with a client of its own loop, closed on that loop whatever happens."""
    from voorbeelden.backend import make_client
    from voorbeelden.batch.provider.run import BatchApiSettings, cancel_all, run_batch_api
    from voorbeelden.commands.batch import term_entry

    # The provider calls (upload, create, poll, download) are few and must survive a blip: the SDK's retries.
    client = make_client(backend.base_url, backend.api_key).with_options(max_retries=3)
    try:
        if args.cancel:
            changed = await cancel_all(client, args.out)
            for c in changed:
                print(f"voorbeelden batch: batch {c['batch_id']}: {c['status']}", file=sys.stderr)
            print(
                f"voorbeelden batch: {len(changed)} batches asked to cancel; run the same command without "
                "--cancel to import the lines they finished (the others are sent again)",
                file=sys.stderr,
            )
            return None
        settings = BatchApiSettings(
            out=args.out,
            host=backend.host,
            embedded=embedded,
            strategy=args.strategy,
            config=_config(args),
            max_lines=args.batch_max_lines,
            max_bytes=int(args.batch_max_mb * 1024 * 1024),
            poll_s=args.poll_interval * backend.clock_scale,
            max_rounds=args.batch_rounds,
            retry_online=args.retry_failed,
            retry_failed_terms=args.retry_failed,
            records=args.records,
            fsync=args.fsync,
            progress=False if (args.json or args.no_progress) else None,
            on_result=lambda row: terms.append(term_entry(row)),
            announce=sys.stderr,
        )
        summary = await run_batch_api(args.input, client, settings)
    finally:
        await client.close()
    data = summary.to_dict()
    data.update(
        generated=summary.complete + summary.failed,
        gate={"sent": summary.lines_sent, "retries": summary.lines_resent + summary.lines_online},
        torn_bytes_cut=0,
    )
    return data


def _report_api(
    args: argparse.Namespace, data: dict[str, Any], terms: list[dict[str, Any]], report: Any
) -> int:
    if not args.json:
        st = data["state"]
        print(
            f"voorbeelden batch: {data['batches_created']} batches created this run ({data['follow_up_batches']} "
            f"follow-up), {data['lines_sent']} lines sent, {data['lines_online']} retried online; "
            f"{st.get('batches', 0)} batches in {st.get('state_file')}",
            file=sys.stderr,
        )
    return int(report(args, data, terms))


def _interrupted(args: argparse.Namespace, embedded: bool) -> None:
    from voorbeelden.batch.provider.state import state_path

    where = state_path(args.out)
    if embedded:
        what = (
            "the embedded simulator stopped with this run, so its batches are gone; run the same command again "
            "to send their lines anew (terms already in --out are kept)"
        )
    else:
        what = (
            f"the batches keep running at the provider (their ids are in {where}). Run the same command again to "
            "resume polling and import them, or add --cancel to cancel them"
        )
    print(f"\nvoorbeelden batch: interrupted; {what}", file=sys.stderr)


def _configure_sim(base_url: str, args: argparse.Namespace) -> None:
    """Set the embedded simulator's batch lifecycle (``POST /admin/batches``, see voorbeelden.sim.batches)."""
    configure_sim_batches(
        base_url, complete_s=args.sim_batch_delay, line_error_rate=args.sim_batch_line_errors
    )


def configure_sim_batches(base_url: str, **settings: Any) -> dict[str, Any]:
    """Change a simulator's batch settings (fields of ``voorbeelden.sim.batches.BatchSimSettings``)."""
    import urllib.request

    root = base_url.rstrip("/").removesuffix("/v1")
    req = urllib.request.Request(
        f"{root}/admin/batches",
        data=json.dumps(settings).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10.0) as resp:
        return json.loads(resp.read())
