"""The command line: a thin layer that turns library results and errors into output and exit codes.

Exit classes (worst wins across inputs): 0 all passed · 1 unreadable or unparseable input · 2 usage ·
3 signature/chain/integrity failure · 4 collateral missing · 5 expectation not met · 6 policy not met.
"""

import functools
import json
from pathlib import Path

import click
from click_default_group import DefaultGroup

from csvverify import __version__
from csvverify.errors import CsvVerifyError
from csvverify.text import printable

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}


class CliError(click.ClickException):
    """A library error shown as ``Error: message`` plus its hint, with the error's own exit class."""

    def __init__(self, error: CsvVerifyError):
        # Messages and hints quote file names and input text: each is escaped whole, so no newline survives.
        super().__init__(printable(error.message) + (f"\n  hint: {printable(error.hint)}" if error.hint else ""))
        self.exit_code = error.exit_code


def translate_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CsvVerifyError as exc:
            raise CliError(exc) from None
        except OSError as exc:  # files the user named for output, directories that vanished, full disks
            where = f" {printable(str(exc.filename))}" if exc.filename else ""
            raise click.ClickException(f"cannot access{where}: {exc.strerror or exc}") from None

    return wrapper


class HexBytes(click.ParamType):
    """Hex bytes of an exact size (or at most ``max_size``, zero-padded); ``@FILE`` reads raw bytes."""

    name = "HEX"

    def __init__(self, size: int | None = None, max_size: int | None = None, allow_file: bool = False):
        self.size, self.max_size, self.allow_file = size, max_size, allow_file
        if allow_file:
            self.name = "HEX|@FILE"

    def convert(self, value, param, ctx):
        if isinstance(value, bytes):
            return value
        if self.allow_file and value.startswith("@"):
            data = self._read_file(value[1:], param, ctx)
        else:
            text = value.strip().removeprefix("0x").replace(":", "").replace(" ", "")
            try:
                data = bytes.fromhex(text)
            except ValueError:
                self.fail(f"{printable(repr(value))} is not hex", param, ctx)
        if self.size is not None and len(data) != self.size:
            self.fail(f"{len(data)} bytes given, {self.size} expected", param, ctx)
        if self.max_size is not None:
            if len(data) > self.max_size:
                self.fail(f"{len(data)} bytes given, at most {self.max_size} allowed", param, ctx)
            data = data.ljust(self.max_size, b"\0")
        return data

    def _read_file(self, name: str, param, ctx) -> bytes:
        """A small regular file, read no further than one byte past the limit (devices and FIFOs are refused)."""
        import os
        import stat

        shown = printable(name)
        limit = self.size or self.max_size or 4096
        fix = f"put the value (at most {limit} bytes) in a regular file, or give it as hex"
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK)  # O_NONBLOCK: opening a FIFO must not hang
        except OSError as exc:
            self.fail(f"cannot read {shown}: {exc.strerror}", param, ctx)
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                        else "a device or socket")
                self.fail(f"{shown} is {kind}, not a regular file: {fix}", param, ctx)
            data = os.read(fd, limit + 1)
        except OSError as exc:
            self.fail(f"cannot read {shown}: {exc.strerror}", param, ctx)
        finally:
            os.close(fd)
        if len(data) > limit:
            self.fail(f"{shown} is larger than {limit} bytes: {fix}", param, ctx)
        if not data:
            self.fail(f"{shown} is empty: {fix}", param, ctx)
        return data


def chain_options(fn):
    """--chain and where its certificates come from; --trust-root for explicit extra roots."""
    decorators = [
        click.option("--chain/--no-chain", default=None,
                     help="Verify PEK ← CEK ← HSK ← pinned Hygon root (default: on when certificates are given)."),
        click.option("--hsk-cek", type=click.Path(path_type=Path), help="HSK ‖ CEK file as the Hygon KDS serves it (2916 bytes)."),
        click.option("--hsk", type=click.Path(path_type=Path), help="HSK certificate (832 bytes); needs --cek."),
        click.option("--cek", type=click.Path(path_type=Path), help="CEK certificate (2084 bytes); needs --hsk."),
        click.option("--certs", "certs_dir", type=click.Path(path_type=Path),
                     help="Directory with <chip id>/hsk_cek.cert or hsk_cek.cert."),
        click.option("--trust-root", "trust_roots", multiple=True, type=click.Path(path_type=Path),
                     help="Also trust this self-signed root certificate (e.g. a test root). Repeatable."),
        click.option("--report-version", type=click.Choice(["1", "2", "3"]),
                     help="Layout of the input when it cannot be told from the bytes (V2 and V3 pages)."),
    ]
    for d in reversed(decorators):
        fn = d(fn)
    return fn


def expectation_options(fn):
    decorators = [
        click.option("--expect-user-data", multiple=True, type=HexBytes(max_size=64, allow_file=True),
                     help="Expected user data (≤ 64 bytes, zero-padded): hex, or @FILE with the raw bytes "
                          "(a regular file of at most 64 bytes). Repeatable: any may match."),
        click.option("--expect-mnonce", multiple=True, type=HexBytes(size=16),
                     help="Expected mnonce (16 bytes hex). Repeatable."),
        click.option("--expect-measure", multiple=True, type=HexBytes(size=32),
                     help="Expected launch measurement (32 bytes hex). Repeatable."),
    ]
    for d in reversed(decorators):
        fn = d(fn)
    return fn


def policy_options(fn):
    """--policy FILE and the flags applied on top of it: list flags add to the file's lists, the others replace
    its rule (the verdict records where each rule came from)."""
    decorators = [
        click.option("--policy", "policy_file", type=click.Path(path_type=Path),
                     help="Appraisal policy (TOML, see `csvverify policy init`)."),
        click.option("--as-of", help="Evaluate dated rules (chip deny lists) as of this date or time, UTC unless "
                                     "an offset is given (default: now). Needs a policy."),
        click.option("--require-bit", multiple=True, type=click.Choice(POLICY_BIT_NAMES),
                     help="Guest-policy bit that must be set (added to the file's list). Repeatable."),
        click.option("--forbid-bit", multiple=True, type=click.Choice(POLICY_BIT_NAMES),
                     help="Guest-policy bit that must be clear (added to the file's list). Repeatable."),
        click.option("--allow-debug/--no-allow-debug", default=None, help="Accept guests without NODBG (overrides the file)."),
        click.option("--min-api", help="Minimum platform firmware API, MAJOR.MINOR (overrides the file)."),
        click.option("--min-build", type=click.IntRange(0), help="Minimum firmware build, V2/V3 (overrides the file)."),
        click.option("--allow-chip", multiple=True,
                     help="Accept only these chip ids (replaces the file's allow list). Repeatable."),
        click.option("--deny-chip", multiple=True,
                     help="Deny these chip ids at any --as-of time, with no date (added to the file's deny list). "
                          "Repeatable."),
        click.option("--require-chain", is_flag=True, default=None, help="Fail unless the chain verifies (overrides the file)."),
    ]
    for d in reversed(decorators):
        fn = d(fn)
    return fn


POLICY_BIT_NAMES = ["NODBG", "NOKS", "ES", "NOSEND", "DOMAIN", "CSV", "CSV3", "ASID_REUSE"]


def build_policy(policy_file, as_of, require_bit, forbid_bit, allow_debug, min_api, min_build, allow_chip, deny_chip,
                 require_chain):
    """The effective policy: the file's rules with the command-line flags applied (None when neither).

    Problems with the flags are UsageError (exit 2); problems in the file are PolicyError (exit 1)."""
    from csvverify.policy import effective_policy, load_policy

    return effective_policy(load_policy(policy_file) if policy_file else None, as_of=as_of,
                            require_bits=require_bit, forbid_bits=forbid_bit, allow_debug=allow_debug,
                            min_api=min_api, min_build=min_build, allow_chips=allow_chip, deny_chips=deny_chip,
                            require_chain=require_chain)


def output_options(fn):
    fn = click.option("--json", "as_json", is_flag=True, help="Print JSON (schema csvverify/verdicts/v1).")(fn)
    fn = click.option("-q", "--quiet", is_flag=True, help="One line per input (and its failing checks).")(fn)
    return fn


def db_option(fn):
    return click.option("--db", "db_path", type=click.Path(path_type=Path), envvar="CSVVERIFY_DB",
                        help="The archive file (default $CSVVERIFY_HOME/archive.db; env CSVVERIFY_DB).")(fn)


def archive_options(fn):
    """verify --archive: also record the verdicts in the archive."""
    fn = db_option(fn)
    return click.option("--archive", "archive_verdicts", is_flag=True,
                        help="Also record the verdicts in the archive (see `csvverify db`).")(fn)


@click.group(cls=DefaultGroup, default="verify", default_if_no_args=False, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="csvverify")
def cli():
    """Verify Hygon CSV attestation reports offline.

    `verify` is the default command, so `csvverify FILE ...` verifies.

    \b
    csvverify report.cert --chain --hsk-cek hsk_cek.cert
    csvverify verify a.cert b.cert --no-chain --json
    csvverify show report.cert --json
    """


@cli.command()
@click.argument("inputs", nargs=-1, required=True)
@chain_options
@expectation_options
@policy_options
@output_options
@archive_options
@click.pass_context
@translate_errors
def verify(ctx, inputs, as_json, quiet, archive_verdicts, db_path, **appraisal_options):
    """Verify attestation reports: signature, MAC, chain to the pinned Hygon root, expectations.

    INPUTS are report files (raw, 4096-byte page, wrapper, hex or base64 text; "-" for stdin).
    Every check is listed as pass / FAIL / skip / n/a with its reason.

    \b
    Exit classes (worst wins): 0 all passed, 1 unreadable input, 2 usage,
    3 signature/chain/integrity failure, 4 collateral missing, 5 expectation not met,
    6 policy not met.
    """
    from csvverify.appraise import Appraiser
    from csvverify.render import verdict_text, verdicts_json
    from csvverify.verdict import worst

    appraiser = Appraiser(_settings(**appraisal_options))
    verdicts = []
    for path in inputs:
        verdict = appraiser.appraise_path(path)
        verdicts.append(verdict)
        if not as_json:
            click.echo(verdict_text(verdict, verbose=not quiet))
    if as_json:
        click.echo(verdicts_json(verdicts))
    if archive_verdicts:
        _record_verdicts(db_path, appraiser, inputs, verdicts, appraisal_options)
    ctx.exit(int(worst(v.exit_class for v in verdicts)))


@cli.command()
@click.argument("input_path", metavar="INPUT")
@click.option("--report-version", type=click.Choice(["1", "2", "3"]), help="Layout when it cannot be told from the bytes.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (schema csvverify/report/v1).")
@translate_errors
def show(input_path, report_version, as_json):
    """Show every decoded field of a report (nothing is verified here).

    The sealing key is never printed; only whether the report still carries it.
    """
    from csvverify.inputs import decode_container, parse_evidence, read_input
    from csvverify.render import report_json, report_text

    evidence = decode_container(read_input(input_path), input_path)
    report = parse_evidence(evidence, input_path, int(report_version) if report_version else None)
    render = report_json if as_json else report_text
    click.echo(render(report, evidence.container, input_path))


@cli.group()
def certs():
    """The offline trust store: HSK/CEK collateral and explicitly trusted roots.

    Stored under $CSVVERIFY_HOME/certs with provenance. `certs fetch` is the only
    command of csvverify that opens a network connection.

    \b
    csvverify certs import /opt/hygon/csv/hsk_cek/      # files, directories or a bundle
    csvverify certs import --root test-root.cert         # trust a (test) root explicitly
    csvverify certs list [--json]
    csvverify certs show hsk_cek.cert
    csvverify certs export bundle.tar
    csvverify certs fetch --chip-id NZA9T14052605
    csvverify certs remove 3f2a9c01 [--chip-id NZA9T14052605]
    """


def _standing_text(store, entry, roots) -> str:
    standing = store.standing(entry, roots)
    if standing == "UNTRUSTED":
        return "UNTRUSTED (kept, never used)"
    if standing.startswith("verified only with --trust-root"):
        return standing + " (not stored: verify needs it too, or `certs import --root` it)"
    return "verified" if standing == "trusted" else standing


def _import_summary(result, as_json: bool, store) -> int:
    from dataclasses import asdict

    roots = store.trust_roots()
    if as_json:
        def listed(entries):
            return [asdict(e) | {"standing": store.standing(e, roots)} for e in entries]

        click.echo(json.dumps({"imported": listed(result.imported), "upgraded": listed(result.upgraded),
                               "unchanged": listed(result.unchanged), "notes": result.notes,
                               "refused": [{"what": w, "why": y} for w, y in result.refused]}, indent=2))
    else:
        for label, entries in (("imported", result.imported), ("upgraded (was UNTRUSTED)", result.upgraded)):
            for e in entries:
                chip = f" (chip id from {e.chip_from})" if e.chip_from and e.chip_from.startswith("the file's") else ""
                click.echo(f"{label}: {e.kind} chip {e.chip_id or '-'}{chip} sha256 {e.sha256[:16]}… "
                           f"{_standing_text(store, e, roots)}  from {e.source}")
        for e in result.unchanged:
            click.echo(f"already stored: {e.kind} chip {e.chip_id or '-'} sha256 {e.sha256[:16]}… "
                       f"{_standing_text(store, e, roots)}")
        for note in result.notes:
            click.echo(f"note: {note}", err=True)
        for what, why in result.refused:
            click.echo(f"refused: {what}: {why}", err=True)
    return 1 if result.refused else 0


@certs.command(name="import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--chip-id", help="File the collateral under this chip id (default: from a <chip>/hsk_cek.cert or "
                                "<chip>_hsk_cek.cert path).")
@click.option("--root", "as_root", is_flag=True,
              help="Trust the file as a self-signed root from now on; with a bundle, import its roots too.")
@click.option("--untrusted", is_flag=True, help="Keep collateral that does not chain to a trusted root (never used).")
@click.option("--trust-root", "trust_roots", multiple=True, type=click.Path(path_type=Path),
              help="Check the collateral against this extra root too (it is not stored).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@translate_errors
def certs_import(ctx, paths, chip_id, as_root, untrusted, trust_roots, as_json):
    """Import hsk_cek.cert files, directories of them, or a bundle; every certificate is verified.

    The chip id comes from --chip-id, else from a <chip>/hsk_cek.cert or <chip>_hsk_cek.cert path;
    otherwise the collateral is filed without one (the CEK names no chip). A bundle's roots are
    imported only with --root. Importing again what is stored UNTRUSTED upgrades it once it verifies.
    """
    from csvverify.store import CertStore, ImportResult, check_chip_id

    if chip_id is not None:
        check_chip_id(chip_id)
    store = CertStore()
    result = ImportResult()
    for path in paths:
        result.merge(store.import_path(path, _roots(trust_roots, store), chip_id=chip_id, untrusted=untrusted,
                                       as_root=as_root))
    ctx.exit(_import_summary(result, as_json, store))


def _roots(trust_roots, store):
    from csvverify.inputs import read_input
    from csvverify.trust import TrustRoots

    roots = TrustRoots()
    for path in trust_roots:
        roots = roots.with_extra(read_input(path), str(path))
    return store.trust_roots(roots)


@certs.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (schema csvverify/certstore/v1).")
@translate_errors
def certs_list(as_json):
    """List stored collateral and roots with their provenance."""
    from dataclasses import asdict

    from csvverify.store import SCHEMA, CertStore

    store = CertStore()
    entries = store.entries()
    roots = store.trust_roots()
    if as_json:
        click.echo(json.dumps({"schema": SCHEMA, "store": str(store.dir),
                               "entries": [asdict(e) | {"trusted": e.trusted, "standing": store.standing(e, roots)}
                                           for e in entries]}, indent=2))
        return
    if not entries:
        click.echo(f"the trust store at {store.dir} is empty")
        return
    for e in entries:
        click.echo(f"{e.kind:<8} {e.chip_id or '-':<18} {e.sha256[:16]}…  {store.standing(e, roots):<12} "
                   f"{e.imported_at}  {e.source}")


@certs.command(name="show")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--trust-root", "trust_roots", multiple=True, type=click.Path(path_type=Path),
              help="Also accept this root when checking the chain.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@translate_errors
def certs_show(path, trust_roots, as_json):
    """Decode a certificate file (HRK/HSK 832 B, CEK/PEK 2084 B, hsk_cek 2916 B) and check what it chains to."""
    from csvverify.inputs import read_input
    from csvverify.render import certificate_report
    from csvverify.store import CertStore

    store = CertStore()
    click.echo(certificate_report(read_input(path), str(path), _roots(trust_roots, store), as_json))


@certs.command(name="export")
@click.argument("out", type=click.Path(path_type=Path))
@translate_errors
def certs_export(out):
    """Write every stored certificate and its provenance into one tar bundle (for air-gapped sites)."""
    from csvverify.store import CertStore

    count = CertStore().export_bundle(out)
    click.echo(f"wrote {count} entries to {out}")


@certs.command(name="fetch")
@click.option("--chip-id", required=True, help="The chip id (serial number) printed by `csvverify show`.")
@click.option("--kds-url", envvar="CSVVERIFY_KDS_URL", default="https://cert.hygon.cn", show_default=True,
              help="Base URL of the Hygon KDS (env CSVVERIFY_KDS_URL).")
@click.option("--timeout", type=click.FloatRange(0, 3600, min_open=True), default=10.0, show_default=True,
              help="Seconds per attempt: connecting, waiting and downloading together.")
@click.option("--retries", type=click.IntRange(0, 10), default=3, show_default=True, help="Retries after the first attempt.")
@click.option("--trust-root", "trust_roots", multiple=True, type=click.Path(path_type=Path),
              help="Also accept this root when checking the download.")
@click.pass_context
@translate_errors
def certs_fetch(ctx, chip_id, kds_url, timeout, retries, trust_roots):
    """Download HSK/CEK for a chip from the Hygon KDS, verify it, and store it. The only networked command."""
    from csvverify.kds import check_base_url, fetch_hsk_cek
    from csvverify.store import CertStore, check_chip_id

    check_chip_id(chip_id)
    check_base_url(kds_url)
    store = CertStore()
    roots = _roots(trust_roots, store)
    data, url = fetch_hsk_cek(chip_id, kds_url, timeout=timeout, retries=retries)
    result = store.add_hsk_cek(data, f"url {url}", chip_id, roots, chip_from="the KDS request (snumber)")
    if result.refused:
        for _, why in result.refused:
            click.echo(f"Error: the KDS answer for chip {chip_id} was not stored: {why}", err=True)
        ctx.exit(4)
    _import_summary(result, False, store)


@certs.command(name="remove")
@click.argument("sha256_prefix", required=False)
@click.option("--chip-id", help="Only entries filed under this chip id (alone: all of them).")
@translate_errors
def certs_remove(sha256_prefix, chip_id):
    """Remove store entries by sha256 prefix (as `certs list` shows it) and/or chip id.

    A removed root is no longer trusted; a certificate file no entry uses any more is deleted.
    """
    from csvverify.store import CertStore

    for e in CertStore().remove(sha256_prefix, chip_id):
        click.echo(f"removed: {e.kind} chip {e.chip_id or '-'} sha256 {e.sha256[:16]}…  from {e.source}")


@cli.group()
def policy():
    """Appraisal policies: accepted measurements, chips, guest-policy bits, firmware minimums.

    \b
    csvverify policy init > fleet.toml
    csvverify policy check fleet.toml
    csvverify policy show fleet.toml --json
    csvverify report.cert --chain --policy fleet.toml
    """


@policy.command(name="init")
def policy_init():
    """Print a commented policy template (valid as it is)."""
    from csvverify.policy import TEMPLATE

    click.echo(TEMPLATE, nl=False)


@policy.command(name="check")
@click.argument("path", type=click.Path(path_type=Path))
@translate_errors
def policy_check(path):
    """Validate a policy file: unknown keys, wrong types and bad values are errors with line numbers."""
    from csvverify.policy import load_policy

    loaded = load_policy(path)
    click.echo(f"OK: {path} ({len(loaded.rules)} rules, sha256 {loaded.sha256})")


@policy.command(name="show")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON (schema csvverify/policy/v1).")
@translate_errors
def policy_show(path, as_json):
    """Show the normalized policy, where each rule is defined, and its sha256."""
    from csvverify.policy import load_policy

    loaded = load_policy(path)
    described = loaded.describe()
    if as_json:
        click.echo(json.dumps({"schema": "csvverify/policy/v1", **described}, indent=2))
        return
    click.echo(f"policy {path}\nsha256 {described['sha256']}")
    for name, rule in described["rules"].items():
        click.echo(f"  {name} = {json.dumps(rule['value'])}    # {rule['from']}")


# -- more command families are added below this line --


# -- digest: the expected launch digest (docs/digest.md) --

DIGEST_PROGRESS_MIN_BYTES = 128 << 20  # show a progress bar on a terminal above this much input
DIGEST_PROGRESS_UNSIZED_STEP = 32 << 20  # redraw the byte count this often when the total is unknown


class _DigestProgressBar:
    """A click progress bar on stderr, created on the first callback if the inputs are large.

    With a pipe or device among the inputs the total is unknown (None): on a terminal it then shows
    the bytes read so far, once they pass DIGEST_PROGRESS_MIN_BYTES.
    """

    def __init__(self):
        self.bar = None
        self.shown = self.done = 0
        self.enabled = None

    def __call__(self, done, total):
        import sys

        if self.enabled is None:
            self.enabled = sys.stderr.isatty() and (total is None or total >= DIGEST_PROGRESS_MIN_BYTES)
            if self.enabled and total is not None:
                self.bar = click.progressbar(length=total, label="hashing", file=sys.stderr)
                self.bar.__enter__()
        if not self.enabled:
            return
        self.done = done
        if self.bar is not None:
            self.bar.update(done - self.shown)
            self.shown = done
        elif done >= DIGEST_PROGRESS_MIN_BYTES and done - self.shown >= DIGEST_PROGRESS_UNSIZED_STEP:
            self._count(done)

    def _count(self, done):
        import sys

        click.echo(f"\rhashing: {done >> 20} MiB read (a pipe or device: total unknown)", file=sys.stderr, nl=False)
        self.shown = done

    def close(self):
        import sys

        if self.bar is not None:
            self.bar.__exit__(None, None, None)
        elif self.shown:
            self._count(self.done)
            click.echo("", file=sys.stderr)  # end the byte-count line


@cli.command()
@click.option("--ovmf", "--firmware", "firmware", required=True, metavar="FILE",
              help="The firmware file QEMU measures: -bios FILE, or pflash unit 0 (OVMF_CODE) with split CODE/VARS.")
@click.option("--kernel", metavar="FILE", help="The -kernel file (a Linux bzImage).")
@click.option("--initrd", metavar="FILE", help="The -initrd file.")
@click.option("--cmdline", "--append", "cmdline", metavar="TEXT", help="The -append string, exactly as given to QEMU.")
@click.option("--cmdline-file", metavar="FILE", help="Read the cmdline from FILE, byte for byte (a trailing newline counts).")
@click.option("--no-kernel-hashes", is_flag=True, help="The VM was started without kernel-hashes=on: only the firmware is measured.")
@click.option("--vmsa", multiple=True, metavar="FILE", help="CSV2: a raw 4096-byte VMSA page; once per vCPU, in vCPU order.")
@click.option("--generation", type=click.Choice(["csv1", "csv2", "csv3"]),
              help="CSV generation (default: csv2 with --vmsa, else csv1); csv3 cannot be computed.")
@click.option("--algorithm", type=click.Choice(["sm3", "sha256"]), default="sm3", show_default=True,
              help="Outer hash: sm3 for Hygon CSV, sha256 for AMD SEV (to cross-check SEV tools).")
@click.option("--format", "fmt", type=click.Choice(["hex", "base64", "json"]), default="hex", show_default=True,
              help="Output format (json: schema csvverify/digest/v1, with every component hash).")
@click.option("--explain", is_flag=True, help="Show every component hash and the 176 table bytes field by field.")
@click.option("--match", "match_report", metavar="REPORT",
              help="Compare with the measure in this report; on a mismatch, find the launch variant that gives it.")
@click.option("--match-measure", type=HexBytes(size=32), help="Like --match, with the measure as hex.")
@click.option("--emit-policy", is_flag=True, help="Print a [[measurements]] TOML entry for a policy allowlist.")
@click.option("--label", metavar="TEXT", help="Label of the --emit-policy entry (default: the input file names).")
@click.pass_context
@translate_errors
def digest(ctx, firmware, kernel, initrd, cmdline, cmdline_file, no_kernel_hashes, vmsa, generation, algorithm,
           fmt, explain, match_report, match_measure, emit_policy, label):
    """Compute the expected launch digest (the report's measure) of a QEMU + OVMF launch.

    measure = SM3(firmware ‖ 176-byte kernel-hashes table ‖ CSV2 VMSA pages); the table is
    measured when a kernel is given (QEMU's kernel-hashes=on).

    \b
    csvverify digest --ovmf OVMF.fd
    csvverify digest --ovmf OVMF.fd --kernel vmlinuz --initrd initrd.img --cmdline "console=ttyS0"
    csvverify digest ... --explain
    csvverify digest ... --match report.cert
    csvverify digest ... --emit-policy --label "prod image 2026-11" >> fleet.toml

    \b
    Exit: 0 digest computed (and matched), 1 unreadable or unusable input, 2 usage or not computable
    (CSV3), 5 --match: the measure differs.
    """
    import json
    import os

    from csvverify import digest as dg
    from csvverify.errors import UsageError
    from csvverify.verdict import ExitClass

    if cmdline is not None and cmdline_file is not None:
        raise UsageError("--cmdline and --cmdline-file are mutually exclusive: give the cmdline once")
    if match_report is not None and match_measure is not None:
        raise UsageError("--match and --match-measure are mutually exclusive")
    if label is not None and not emit_policy:
        raise UsageError("--label names the --emit-policy entry; add --emit-policy")
    if emit_policy and fmt == "json":
        raise UsageError("--emit-policy prints TOML; drop --format json")
    if emit_policy:
        dg.require_allowlistable(algorithm)  # before any file is read
    # os.fsencode gives back the exact argv bytes, even when they are not valid UTF-8.
    cmdline = dg.read_cmdline_file(cmdline_file) if cmdline_file is not None else (
        None if cmdline is None else os.fsencode(cmdline))
    options = dg.DigestOptions(algorithm=algorithm, kernel_hashes=not no_kernel_hashes, vmsa=tuple(vmsa),
                               generation=generation)
    report_version = report_policy = None
    subject = "the given measure"
    if match_report is not None:
        from csvverify.inputs import load_report

        report = load_report(match_report)
        match_measure, report_version, report_policy = report.measure, report.version, report.policy
        subject = f"the measure in {match_report}"
    progress = _DigestProgressBar()
    try:
        if match_measure is not None:
            match = dg.match_launch_digest(match_measure, firmware, kernel, initrd, cmdline, options,
                                           report_version=report_version, report_policy=report_policy,
                                           progress=progress)
            result = match.result
        else:
            match, result = None, dg.launch_digest(firmware, kernel, initrd, cmdline, options, progress=progress)
    finally:
        progress.close()

    for warning in result.warnings + tuple(dg.policy_warnings(result) if emit_policy else ()):
        click.echo(f"warning: {printable(warning)}", err=True)  # warnings quote file names
    if fmt == "json":
        click.echo(json.dumps(dg.as_dict(result, match), indent=2))
    else:
        lines = dg.explain_lines(result, fmt) if explain else []
        if emit_policy:
            lines = [f"# {line}" for line in lines] + [dg.policy_snippet(result, label or dg.default_label(result))]
        elif not explain:
            lines.append(dg.format_digest(result.digest, fmt))
        if match is not None:
            unexplained = not match.matched and not match.reproduced_by
            match_text = dg.match_lines(match, subject, fmt)
            if unexplained and not explain:
                match_text += dg.explain_lines(result, fmt)
            lines += [f"# {line}" for line in match_text] if emit_policy else match_text
        click.echo("\n".join(lines).rstrip("\n"))
    if match is not None and not match.matched:
        ctx.exit(int(ExitClass.EXPECTATION))


# -- archive: audit, verify --archive and the db commands (docs/archive.md) --

def _settings(chain, hsk_cek, hsk, cek, certs_dir, trust_roots, report_version, expect_user_data, expect_mnonce,
              expect_measure, policy_file, as_of, require_bit, forbid_bit, allow_debug, min_api, min_build, allow_chip,
              deny_chip, require_chain):
    """The appraisal settings from the chain, expectation and policy options, as `verify` builds them."""
    from csvverify.appraise import Settings
    from csvverify.collateral import CollateralOptions
    from csvverify.inputs import read_input
    from csvverify.trust import TrustRoots
    from csvverify.verify import Expectations

    options = CollateralOptions(hsk_cek=hsk_cek, hsk=hsk, cek=cek, certs_dir=certs_dir)
    if chain is False and options.given:
        raise click.UsageError("certificates were given with --no-chain; drop one of them")
    roots = TrustRoots()
    for path in trust_roots:
        roots = roots.with_extra(read_input(path), str(path))
    return Settings(roots=roots, chain=bool(chain) or (chain is None and options.given), collateral=options,
                    expect=Expectations(tuple(expect_user_data), tuple(expect_mnonce), tuple(expect_measure)),
                    report_version=int(report_version) if report_version else None,
                    policy=build_policy(policy_file, as_of, require_bit, forbid_bit, allow_debug, min_api, min_build,
                                        allow_chip, deny_chip, require_chain))


def _archive(db_path, create: bool = True):
    from csvverify.archive import Archive

    return Archive(db_path, create=create)


def _record_verdicts(db_path, appraiser, inputs, verdicts, options: dict) -> None:
    """verify --archive: one run, one new verdict per input (an explicit verification is always recorded).
    Of ``options``, the chain, certificate, trust-root and expectation ones are recorded, for re-appraisal."""
    import os

    from csvverify.archive import STDIN, appraisal, display_path
    from csvverify.audit import context, settings_fingerprint
    from csvverify.carryover import recorded_options
    from csvverify.errors import InputError
    from csvverify.hashing import sha256
    from csvverify.inputs import read_input

    archive = _archive(db_path)
    settings_sha, description = settings_fingerprint(appraiser)
    run_id = archive.start_run("verify", settings_sha, description, {"inputs": [display_path(p) for p in inputs],
                                                                     "options": recorded_options(options)})
    ctx = context(appraiser, run_id, settings_sha)
    items = []
    for path, verdict in zip(inputs, verdicts):
        data = None
        if path != "-" and verdict.sha256 is not None:
            try:
                data = read_input(path)  # read again: the archive keeps the very bytes that were verified
            except InputError:
                data = None
            if data is not None and sha256(data).hex() != verdict.sha256:
                click.echo(f"warning: {printable(str(path))} changed after verification; its bytes are not archived",
                           err=True)
                data = None
        items.append(appraisal(verdict, ctx, STDIN if path == "-" else display_path(os.path.abspath(path)), data))
    stored = archive.store(items, settings_sha, run_id, force=True)
    ids = [str(r) for r in stored if isinstance(r, int)]  # the same bytes twice in one command: one verdict
    archive.finish_run(run_id, len(items), len(ids), len(stored) - len(ids))
    click.echo(f"archived {len(ids)} verdict(s) in {archive.path}: id {', '.join(ids)}", err=True)


class _Progress:
    """A progress bar on stderr, only when stderr is a terminal (counting the inputs first)."""

    def __init__(self, label: str, count=None):
        import sys

        self.bar = None
        if sys.stderr.isatty() and count is not None:
            self.bar = click.progressbar(length=count(), label=label, file=sys.stderr)
            self.bar.__enter__()

    def __call__(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def _show_summary(ctx, summary, as_json: bool, command: str) -> None:
    from csvverify.archive_render import summary_text

    click.echo(json.dumps(summary.to_dict(), indent=2) if as_json else summary_text(summary, command))
    ctx.exit(int(summary.exit_class))


def batch_options(fn):
    decorators = [
        click.option("-j", "--jobs", type=click.IntRange(1, 256), help="Worker processes (default: the number of cores)."),
        click.option("--force", is_flag=True,
                     help="Verify again inputs already archived under the same settings and tool version."),
        db_option,
        click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON (schema csvverify/audit/v1)."),
    ]
    for d in reversed(decorators):
        fn = d(fn)
    return fn


@cli.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("-r", "--recursive", is_flag=True, help="Walk directories recursively (symlinked directories are not followed).")
@click.option("--glob", "pattern", metavar="PATTERN",
              help="Only files whose name matches (e.g. '*.cert'; with a '/', the path below the directory given).")
@batch_options
@chain_options
@expectation_options
@policy_options
@click.pass_context
@translate_errors
def audit(ctx, paths, recursive, pattern, jobs, force, db_path, as_json, **appraisal_options):
    """Verify every report under PATHS and record each verdict in the archive.

    Files and directories (add -r to descend). Inputs already verified under the same settings and
    tool version are not verified again (--force does), so an interrupted audit resumes when rerun.
    An unreadable, garbage, huge or special file becomes an error verdict; the batch goes on.

    \b
    csvverify audit /evidence/2026-11/ -r --chain --certs /opt/hygon/csv/hsk_cek
    csvverify audit reports/ --glob '*.cert' --chain --jobs 2 --json

    \b
    Exit: the worst class over the batch, as for verify (0 every input passed; 1 an input was
    unreadable; 3 signature/chain/integrity; 4 collateral missing; 5 expectation; 6 policy);
    7 the archive cannot be used. Non-zero therefore means "the batch had failures".
    """
    from csvverify.audit_workers import default_jobs, start_early
    from csvverify.errors import UsageError

    if "-" in paths:
        raise UsageError("audit reads files and directories, not standard input; use `csvverify verify -`")
    start_early(jobs or default_jobs())  # the workers' imports then overlap this process's own

    from csvverify import audit as batch
    from csvverify.appraise import Appraiser
    from csvverify.carryover import recorded_options

    settings = _settings(**appraisal_options)
    appraiser = Appraiser(settings)  # unusable collateral options stop here, before the archive is touched
    archive = _archive(db_path)
    progress = _Progress("auditing", lambda: batch.count_inputs(paths, recursive, pattern))
    try:
        summary = batch.audit(archive, list(paths), settings, recursive=recursive, pattern=pattern, jobs=jobs,
                              force=force, progress=progress, appraiser=appraiser,
                              options=recorded_options(appraisal_options))
    finally:
        progress.close()
    _show_summary(ctx, summary, as_json, "audit")


@cli.group(cls=DefaultGroup, default="status", default_if_no_args=True)
def db():
    """The verdict archive: status, queries, exports, integrity check, re-appraisal, replays.

    \b
    csvverify db status
    csvverify db list --chip NZA9T14052605 --outcome fail [--json]
    csvverify db show 42
    csvverify db export --format csv|json|jsonl|html -o out
    csvverify db check
    csvverify db head
    csvverify db reappraise --policy new.toml
    csvverify db duplicates
    csvverify db backup copy.db
    """


@db.command(name="path")
@db_option
def db_path_cmd(db_path):
    """Print the archive's path."""
    from csvverify.archive import default_path

    click.echo(str(db_path or default_path()))


@db.command(name="status")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@translate_errors
def db_status(db_path, as_json):
    """Counts, size, schema and the chain head."""
    from csvverify.archive_query import status
    from csvverify.archive_render import status_text

    st = status(_archive(db_path, create=False))
    click.echo(json.dumps(st, indent=2) if as_json else status_text(st))


def filter_options(fn):
    from csvverify.verdict import CHECKS

    decorators = [
        click.option("--chip", help="Only this chip id."),
        click.option("--outcome", type=click.Choice(["pass", "fail", "incomplete", "error"]), help="Only this outcome."),
        click.option("--check", "check_id", type=click.Choice(list(CHECKS)), metavar="CHECK",
                     help="Only verdicts in which this check failed (e.g. report.mac)."),
        click.option("--since", metavar="WHEN", help="Only verdicts from WHEN on: 2026-11-01, 2026-11-01T08:00, 7d, 12h."),
    ]
    for d in reversed(decorators):
        fn = d(fn)
    return fn


def _filters(chip, outcome, check_id, since):
    from csvverify.archive import parse_since
    from csvverify.archive_query import Filters

    return Filters(chip=chip, outcome=outcome, check=check_id, since=parse_since(since) if since is not None else None)


@db.command(name="list")
@db_option
@filter_options
@click.option("-n", "--count", "limit", type=click.IntRange(0), default=20, show_default=True,
              help="How many verdicts, newest first (0: all).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (an array of verdict summaries).")
@translate_errors
def db_list(db_path, chip, outcome, check_id, since, limit, as_json):
    """List verdicts, newest first."""
    from csvverify.archive_query import list_verdicts
    from csvverify.archive_render import list_text

    archive = _archive(db_path, create=False)
    items = list_verdicts(archive.conn, _filters(chip, outcome, check_id, since), limit)
    click.echo(json.dumps(list(items), indent=2) if as_json else list_text(items))


@db.command(name="show")
@click.argument("verdict_id", type=int, metavar="ID")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@translate_errors
def db_show(ctx, verdict_id, db_path, as_json):
    """One verdict with all its checks, its report and every path the report was seen at."""
    from csvverify.archive_query import show
    from csvverify.archive_render import show_text

    archive = _archive(db_path, create=False)
    item = show(archive.conn, verdict_id)
    if item is None:
        raise click.ClickException(f"no verdict {verdict_id} in {archive.path} (`csvverify db list` shows the ids)")
    click.echo(json.dumps(item, indent=2) if as_json else show_text(item))


@db.command(name="export")
@db_option
@click.option("--format", "fmt", type=click.Choice(["csv", "json", "jsonl", "html"]), required=True,
              help="csv: one row per verdict; json/jsonl: verdicts with their checks; html: a self-contained summary.")
@click.option("-o", "--output", "out", required=True, type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
              help="Output file ('-' for standard output).")
@filter_options
@translate_errors
def db_export(db_path, fmt, out, chip, outcome, check_id, since):
    """Export verdicts (all, or those matching the filters)."""
    import sys

    from csvverify.export import export

    archive = _archive(db_path, create=False)
    filters = _filters(chip, outcome, check_id, since)
    if str(out) == "-":
        count = export(archive.conn, fmt, sys.stdout, filters)
    else:
        try:
            with open(out, "w", encoding="utf-8", newline="") as fh:
                count = export(archive.conn, fmt, fh, filters)
        except OSError as exc:
            raise click.ClickException(f"{out}: cannot be written: {exc.strerror}") from None
        click.echo(f"exported {count} verdicts to {out} ({fmt})", err=True)


@db.command(name="check")
@db_option
@click.option("--expect-head", metavar="ID:HASH",
              help="A head recorded earlier (`db head`): fails unless the chain still holds that verdict with that "
                   "hash, so a cut tail or a rewritten history shows.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@translate_errors
def db_check(ctx, db_path, expect_head, as_json):
    """Is the history intact? Recomputes the hash chain over every verdict, its checks and its report
    row, and cross-checks reports, settings, runs and paths (docs/archive.md).

    \b
    Exit: 0 intact, 3 broken (the first broken link is named, with the change it implies:
    edit, deletion or insertion), 2 a malformed --expect-head, 7 the archive cannot be used.
    """
    from csvverify.archive_render import check_text
    from csvverify.chaincheck import check_archive

    archive = _archive(db_path, create=False)
    report = check_archive(archive.conn, expect_head)
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else check_text(report))
    ctx.exit(0 if report.ok else 3)


@db.command(name="head")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON (schema csvverify/archive-head/v1).")
@click.pass_context
@translate_errors
def db_head(ctx, db_path, as_json):
    """Check the archive, then print its head as ID:HASH for an auditor to record elsewhere.

    Later, `db check --expect-head ID:HASH` proves every verdict up to that one is still there,
    unchanged. Exit: 0, or 3 (nothing printed on stdout) when the archive is not intact.
    """
    from csvverify.archive_render import check_text, head_line
    from csvverify.chaincheck import check_archive

    archive = _archive(db_path, create=False)
    report = check_archive(archive.conn)
    if not report.ok:
        click.echo(check_text(report), err=True)
        ctx.exit(3)
    if as_json:
        click.echo(json.dumps({"schema": "csvverify/archive-head/v1", "verdicts": report.verdicts,
                               "verdict_id": report.head_id or 0, "hash": report.head_hash,
                               "expect_head": head_line(report)}, indent=2))
    else:
        click.echo(head_line(report))


@db.command(name="reappraise")
@batch_options
@click.option("--dry-run", is_flag=True, help="Show the flips without storing the new verdicts.")
@click.option("--weaker", is_flag=True,
              help="Re-appraise even when the new settings check less than the stored verdicts' (chain, trust "
                   "roots, expectations, policy).")
@chain_options
@expectation_options
@policy_options
@click.pass_context
@translate_errors
def db_reappraise(ctx, jobs, force, db_path, as_json, dry_run, weaker, **appraisal_options):
    """Verify every archived report again under new settings and show which verdicts flip.

    The chain, certificate, trust-root, expectation and report-version options of the stored
    verdicts carry over unless given; the output says what was carried over. Settings that check
    less than the stored ones are refused (exit 2) unless --weaker (or, for the chain, --no-chain).
    New verdicts are added (each names the verdict it re-appraises); nothing stored is changed.
    Reports already re-appraised under these settings are not verified again (unless --force).
    Exit: the worst class of the new verdicts, as for audit.
    """
    from csvverify import audit as batch
    from csvverify import carryover
    from csvverify.errors import CsvVerifyError

    archive = _archive(db_path, create=False)
    explicit = {k: appraisal_options[k] for k in carryover.TRUST if carryover.given(appraisal_options[k])}
    baselines = carryover.baselines(archive.conn)
    merged, carried = carryover.carry_over(explicit, baselines)
    options = {**appraisal_options, **merged}
    try:
        settings = _settings(**options)
    except CsvVerifyError as exc:
        if not carried:
            raise
        raise carryover.unusable(carried, exc) from None
    progress = _Progress("re-appraising",
                         lambda: archive.conn.execute("SELECT COUNT(*) FROM reports WHERE bytes IS NOT NULL").fetchone()[0])
    try:
        summary = batch.reappraise(archive, settings, jobs=jobs, force=force, dry_run=dry_run, progress=progress,
                                   baselines=baselines, explicit=explicit, carried=carried, weaker=weaker,
                                   options=carryover.recorded_options(options))
    finally:
        progress.close()
    _show_summary(ctx, summary, as_json, "reappraise" + (" (dry run)" if dry_run else ""))


@db.command(name="duplicates")
@db_option
@click.option("--vm-threshold", type=click.IntRange(1), default=16, show_default=True,
              help="Flag chips seen under more than this many VM ids.")
@click.option("--limit", type=click.IntRange(0), default=50, show_default=True, help="Groups shown per kind (0: all).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@translate_errors
def db_duplicates(db_path, vm_threshold, limit, as_json):
    """Replays: the same mnonce or user data in different reports, a report under several paths,
    a chip under many VM ids."""
    from csvverify.archive_render import duplicates_text
    from csvverify.replay import duplicates

    archive = _archive(db_path, create=False)
    dup = duplicates(archive.conn, vm_threshold, limit or None)
    click.echo(json.dumps(dup, indent=2) if as_json else duplicates_text(dup))


@db.command(name="backup")
@click.argument("dest", type=click.Path(path_type=Path, dir_okay=False))
@db_option
@translate_errors
def db_backup(dest, db_path):
    """Write a consistent copy of the archive to DEST (VACUUM INTO; safe while audits run)."""
    from csvverify.archive import backup

    archive = _archive(db_path, create=False)
    size = backup(archive, dest)
    click.echo(f"backed up {archive.path} to {dest} ({size / 1e6:.1f} MB)")
