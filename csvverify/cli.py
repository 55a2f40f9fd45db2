"""The command line: a thin layer that turns library results and errors into output and exit codes.

Exit classes (worst wins across inputs): 0 all passed · 1 unreadable or unparseable input · 2 usage ·
3 signature/chain/integrity failure · 4 collateral missing · 5 expectation not met · 6 policy not met.
"""

import functools
from pathlib import Path

import click
from click_default_group import DefaultGroup

from csvverify import __version__
from csvverify.errors import CsvVerifyError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}


class CliError(click.ClickException):
    """A library error shown as ``Error: message`` plus its hint, with the error's own exit class."""

    def __init__(self, error: CsvVerifyError):
        super().__init__(error.diagnostics())
        self.exit_code = error.exit_code


def translate_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CsvVerifyError as exc:
            raise CliError(exc) from None

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
            try:
                data = Path(value[1:]).read_bytes()
            except OSError as exc:
                self.fail(f"cannot read {value[1:]}: {exc.strerror}", param, ctx)
        else:
            text = value.strip().removeprefix("0x").replace(":", "").replace(" ", "")
            try:
                data = bytes.fromhex(text)
            except ValueError:
                self.fail(f"{value!r} is not hex", param, ctx)
        if self.size is not None and len(data) != self.size:
            self.fail(f"{len(data)} bytes given, {self.size} expected", param, ctx)
        if self.max_size is not None:
            if len(data) > self.max_size:
                self.fail(f"{len(data)} bytes given, at most {self.max_size} allowed", param, ctx)
            data = data.ljust(self.max_size, b"\0")
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
                     help="Expected user data (≤ 64 bytes, zero-padded). Repeatable: any may match."),
        click.option("--expect-mnonce", multiple=True, type=HexBytes(size=16),
                     help="Expected mnonce (16 bytes hex). Repeatable."),
        click.option("--expect-measure", multiple=True, type=HexBytes(size=32),
                     help="Expected launch measurement (32 bytes hex). Repeatable."),
    ]
    for d in reversed(decorators):
        fn = d(fn)
    return fn


def output_options(fn):
    fn = click.option("--json", "as_json", is_flag=True, help="Print JSON (schema csvverify/verdicts/v1).")(fn)
    fn = click.option("-q", "--quiet", is_flag=True, help="One line per input (and its failing checks).")(fn)
    return fn


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
@output_options
@click.pass_context
@translate_errors
def verify(ctx, inputs, chain, hsk_cek, hsk, cek, certs_dir, trust_roots, report_version, expect_user_data,
           expect_mnonce, expect_measure, as_json, quiet):
    """Verify attestation reports: signature, MAC, chain to the pinned Hygon root, expectations.

    INPUTS are report files (raw, 4096-byte page, wrapper, hex or base64 text; "-" for stdin).
    Every check is listed as pass / FAIL / skip / n/a with its reason.

    \b
    Exit classes (worst wins): 0 all passed, 1 unreadable input, 2 usage,
    3 signature/chain/integrity failure, 4 collateral missing, 5 expectation not met.
    """
    from csvverify.appraise import Appraiser, Settings
    from csvverify.collateral import CollateralOptions
    from csvverify.inputs import read_input
    from csvverify.render import verdict_text, verdicts_json
    from csvverify.trust import TrustRoots
    from csvverify.verdict import worst
    from csvverify.verify import Expectations

    options = CollateralOptions(hsk_cek=hsk_cek, hsk=hsk, cek=cek, certs_dir=certs_dir)
    if chain is False and options.given:
        raise click.UsageError("certificates were given with --no-chain; drop one of them")
    roots = TrustRoots()
    for path in trust_roots:
        roots = roots.with_extra(read_input(path), str(path))
    settings = Settings(roots=roots, chain=bool(chain) or (chain is None and options.given), collateral=options,
                        expect=Expectations(tuple(expect_user_data), tuple(expect_mnonce), tuple(expect_measure)),
                        report_version=int(report_version) if report_version else None)
    appraiser = Appraiser(settings)
    verdicts = []
    for path in inputs:
        verdict = appraiser.appraise_path(path)
        verdicts.append(verdict)
        if not as_json:
            click.echo(verdict_text(verdict, verbose=not quiet))
    if as_json:
        click.echo(verdicts_json(verdicts))
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


# -- more command families are added below this line --
