"""The command line: a thin layer that turns library results and errors into output and exit codes."""

import click
from click_default_group import DefaultGroup

from csvverify import __version__

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}


@click.group(cls=DefaultGroup, default="verify", default_if_no_args=False, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="csvverify")
def cli():
    """Verify Hygon CSV attestation reports offline.

    \b
    csvverify report.cert --chain --hsk-cek hsk_cek.cert
    csvverify show report.cert --json
    """


@cli.command()
@click.argument("inputs", nargs=-1, required=True)
def verify(inputs):
    """Verify one or more attestation reports."""
    raise click.ClickException("not implemented yet")


# -- more command families are added below this line --
