"""One evidence file in, one verdict out: read → unwrap → parse → find collateral → verify.

This is the only step that mixes I/O with verification; ``csvverify.verify.verify`` stays pure. An input
that cannot be read or parsed becomes an error verdict instead of an exception, so a batch goes on.
"""

from dataclasses import dataclass, field, replace

from csvverify.collateral import CollateralFinder, CollateralOptions
from csvverify.errors import InputError
from csvverify.hashing import sha256
from csvverify.inputs import decode_container, parse_evidence, read_input
from csvverify.trust import TrustRoots
from csvverify.verdict import Finding, Status, Verdict, error_verdict
from csvverify.policy import Policy
from csvverify.store import CertStore, StoreError
from csvverify.verify import Claims, Expectations, verify


@dataclass(frozen=True)
class Settings:
    roots: TrustRoots = field(default_factory=TrustRoots)
    chain: bool = False
    collateral: CollateralOptions = field(default_factory=CollateralOptions)
    expect: Expectations = field(default_factory=Expectations)
    report_version: int | None = None
    use_store: bool = True  # consult the trust store in CSVVERIFY_HOME (and trust roots imported into it)
    policy: Policy | None = None


class Appraiser:
    """Holds what is shared across inputs (explicit collateral is read once, the store opened once).

    The trust store is opened only for --chain, the one thing that needs it; a store that cannot be read
    then becomes a finding and a hint in each verdict, not an error that stops the command."""

    def __init__(self, settings: Settings):
        self.store: CertStore | None = None
        self.store_problem: StoreError | None = None
        if settings.chain and settings.use_store:
            self.store = CertStore()
            try:
                settings = replace(settings, roots=self.store.trust_roots(settings.roots))
            except StoreError as exc:
                self.store_problem = exc
        self.settings = settings
        self.collateral = CollateralFinder(settings.collateral, self.store) if settings.chain else None

    def appraise_bytes(self, data: bytes, name: str, digest: str | None = None) -> Verdict:
        """One verdict; ``digest``: the hex SHA-256 of ``data`` when the caller has it already."""
        digest = digest or sha256(data).hex()
        try:
            evidence = decode_container(data, name)
            report = parse_evidence(evidence, name, self.settings.report_version)
        except InputError as exc:
            return error_verdict(name, digest, exc.message, exc.hint)
        envelope = evidence.envelope
        collateral = None
        if self.collateral:
            try:
                pek = report.pek()
            except InputError:
                pek = None
            collateral = self.collateral.find(report.chip_id, pek, envelope)
        claims = Claims(envelope.shape, envelope.serial_number, envelope.pek, envelope.pek_only_in_envelope,
                        envelope.chip_id_from_envelope) if envelope else Claims()
        verdict = verify(report, input_name=name, input_sha256=digest, roots=self.settings.roots,
                         chain=self.settings.chain, collateral=collateral, expect=self.settings.expect, claims=claims,
                         policy=self.settings.policy)
        verdict.report["container"] = evidence.container
        self._store_notes(verdict, report.chip_id)
        return verdict

    def _store_notes(self, verdict: Verdict, chip_id: str) -> None:
        """What the trust store contributes to a verdict that the pure verification cannot know."""
        if self.store is None:
            return
        if self.store_problem is not None:
            verdict.findings.append(Finding("trust-store-unusable", "warning",
                                            f"{self.store_problem.message}: no collateral or root from the trust "
                                            "store was used"))
            verdict.hint = "; ".join(filter(None, [verdict.hint, self.store_problem.hint]))
            return
        if verdict.check("collateral").status is not Status.FAIL:
            return
        try:
            kept = self.store.untrusted_for(chip_id)
        except StoreError:
            return
        if kept:
            verdict.hint = "; ".join(filter(None, [verdict.hint, (
                f"the trust store keeps {len(kept)} UNTRUSTED entr{'y' if len(kept) == 1 else 'ies'} that could "
                f"apply ({', '.join(e.sha256[:16] + '…' for e in kept)}): they are never used; import them again "
                "once they verify (e.g. after `certs import --root` of their root), or `certs remove` them")]))

    def appraise_path(self, path) -> Verdict:
        name = str(path)
        try:
            data = read_input(path)
        except InputError as exc:
            return error_verdict(name, None, exc.message, exc.hint)
        return self.appraise_bytes(data, name)
