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
from csvverify.verdict import Verdict, error_verdict
from csvverify.policy import Policy
from csvverify.store import CertStore
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
    """Holds what is shared across inputs (explicit collateral is read once, the store opened once)."""

    def __init__(self, settings: Settings):
        store = CertStore() if settings.use_store else None
        if store is not None:
            settings = replace(settings, roots=store.trust_roots(settings.roots))
        self.settings = settings
        self.collateral = CollateralFinder(settings.collateral, store) if settings.chain else None

    def appraise_bytes(self, data: bytes, name: str) -> Verdict:
        digest = sha256(data).hex()
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
        claims = Claims(envelope.shape, envelope.serial_number, envelope.pek,
                        envelope.pek_only_in_envelope) if envelope else Claims()
        verdict = verify(report, input_name=name, input_sha256=digest, roots=self.settings.roots,
                         chain=self.settings.chain, collateral=collateral, expect=self.settings.expect, claims=claims,
                         policy=self.settings.policy)
        verdict.report["container"] = evidence.container
        return verdict

    def appraise_path(self, path) -> Verdict:
        name = str(path)
        try:
            data = read_input(path)
        except InputError as exc:
            return error_verdict(name, None, exc.message, exc.hint)
        return self.appraise_bytes(data, name)
