"""The verdict model: every check with a stable id, a status and a reason; findings; outcome; exit class.

A verdict never stops at the first failure: every check that can run, runs, and every check in
``CHECKS`` appears in every verdict, with ``skipped`` or ``not-applicable`` and the reason when it did
not run. ``SCHEMA`` names the JSON shape of ``to_dict`` (documented in docs/verification.md).
"""

from dataclasses import dataclass, field
from enum import Enum, IntEnum

SCHEMA = "csvverify/verdicts/v1"


class Status(str, Enum):
    PASS = "pass"
    FAIL = "fail"
    SKIPPED = "skipped"
    NOT_APPLICABLE = "not-applicable"


class ExitClass(IntEnum):
    OK = 0
    INPUT = 1  # unreadable or unparseable input
    USAGE = 2  # bad options (click's own class)
    SIGNATURE = 3  # a signature, certificate chain or integrity check failed
    COLLATERAL = 4  # certificates needed for --chain are missing
    EXPECTATION = 5  # the report is genuine-looking but not what the user expected
    POLICY = 6  # an appraisal-policy rule failed


# Which class wins when several apply ("worst first"): a forged report outranks everything; a
# definite mismatch outranks inputs that could not be judged at all.
_RANK = [ExitClass.SIGNATURE, ExitClass.EXPECTATION, ExitClass.POLICY, ExitClass.INPUT,
         ExitClass.COLLATERAL, ExitClass.USAGE, ExitClass.OK]


def worst(classes) -> ExitClass:
    classes = set(classes) or {ExitClass.OK}
    return min(classes, key=_RANK.index)


# Every check, in the order verdicts list them, with the class a failure of it belongs to.
CHECKS: dict[str, tuple[ExitClass, str]] = {
    "format": (ExitClass.INPUT, "the input decodes to a report layout"),
    "collateral": (ExitClass.COLLATERAL, "HSK and CEK certificates are available for the chain"),
    "root.pinned": (ExitClass.SIGNATURE, "the HSK's issuer is the pinned Hygon root (or an explicit --trust-root)"),
    "hsk.usage": (ExitClass.SIGNATURE, "the HSK is an SM2 key with usage HSK, well encoded"),
    "hsk.signature": (ExitClass.SIGNATURE, "the root signed the HSK"),
    "cek.usage": (ExitClass.SIGNATURE, "the CEK is an SM2 key with usage CEK, signature slots as expected"),
    "cek.issuer": (ExitClass.SIGNATURE, "the CEK names the HSK's key id as its issuer"),
    "cek.signature": (ExitClass.SIGNATURE, "the HSK signed the CEK"),
    "pek.usage": (ExitClass.SIGNATURE, "the report's PEK is an SM2 key with usage PEK, well encoded"),
    "pek.signature": (ExitClass.SIGNATURE, "the CEK signed the PEK"),
    "pek.oca": (ExitClass.SIGNATURE, "the platform owner's (OCA) signature on the PEK"),
    "chip.binding": (ExitClass.SIGNATURE, "the chip ids of report, envelope and certificate lookup agree"),
    "report.signature_fields": (ExitClass.SIGNATURE, "sig_usage is PEK and sig_algo is SM2"),
    "report.signature": (ExitClass.SIGNATURE, "the PEK signed the report"),
    "report.mac": (ExitClass.SIGNATURE, "the HMAC-SM3 over the signer block matches"),
    "expect.user_data": (ExitClass.EXPECTATION, "user data equals an expected value"),
    "expect.mnonce": (ExitClass.EXPECTATION, "mnonce equals an expected value"),
    "expect.measure": (ExitClass.EXPECTATION, "the launch measurement equals an expected value"),
    "policy.requirements": (ExitClass.POLICY, "require_chain, require_mac and accepted report versions"),
    "policy.measurement": (ExitClass.POLICY, "the measurement is on the policy's allowlist"),
    "policy.user_data": (ExitClass.POLICY, "the user data is among the policy's accepted values"),
    "policy.mnonce": (ExitClass.POLICY, "the mnonce is among the policy's accepted values"),
    "policy.chip": (ExitClass.POLICY, "the chip is allowed and not denied (as of the appraisal time)"),
    "policy.guest_policy": (ExitClass.POLICY, "required and forbidden guest-policy bits; debugging"),
    "policy.firmware": (ExitClass.POLICY, "firmware API, build and certificate version minimums"),
    "policy.forensics": (ExitClass.POLICY, "forensic flags the policy treats as failures"),
}


@dataclass(frozen=True)
class Check:
    id: str
    status: Status
    reason: str

    @property
    def exit_class(self) -> ExitClass:
        return CHECKS[self.id][0] if self.status is Status.FAIL else ExitClass.OK

    def to_dict(self) -> dict:
        return {"id": self.id, "status": self.status.value, "reason": self.reason}


@dataclass(frozen=True)
class Finding:
    """Something an auditor must know that is not itself a pass/fail check (e.g. a leaked sealing key)."""

    id: str
    severity: str  # "warning" or "info"
    message: str

    def to_dict(self) -> dict:
        return {"id": self.id, "severity": self.severity, "message": self.message}


@dataclass
class Verdict:
    input: str
    sha256: str | None
    checks: list[Check] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    report: dict | None = None  # decoded fields (see render.report_fields)
    trust: dict = field(default_factory=dict)
    hint: str | None = None
    policy: dict | None = None  # the effective policy: source, sha256, as-of time, each rule and its origin

    def check(self, check_id: str) -> Check:
        return next(c for c in self.checks if c.id == check_id)

    @property
    def exit_class(self) -> ExitClass:
        return worst(c.exit_class for c in self.failed)

    @property
    def outcome(self) -> str:
        """pass, fail (a definite failure), incomplete (collateral missing) or error (unreadable input)."""
        cls = self.exit_class
        if cls is ExitClass.OK:
            return "pass"
        if cls is ExitClass.INPUT:
            return "error"
        if cls is ExitClass.COLLATERAL:
            return "incomplete"
        return "fail"

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status is Status.FAIL]

    def to_dict(self) -> dict:
        return {
            "input": self.input,
            "sha256": self.sha256,
            "outcome": self.outcome,
            "exit_class": int(self.exit_class),
            "report": self.report,
            "checks": [c.to_dict() for c in self.checks],
            "findings": [f.to_dict() for f in self.findings],
            "trust": self.trust,
            "policy": self.policy,
            "hint": self.hint,
        }


# Checks and findings are immutable and most recur verbatim in every verdict of a batch: one object each is
# made once (which also lets a pickled batch of verdicts carry each reason text once).
_MADE: dict[tuple, Check | Finding] = {}
MADE_LIMIT = 8192


def _once(kind, *fields):
    key = (kind, *fields)
    made = _MADE.get(key)
    if made is None:
        if len(_MADE) >= MADE_LIMIT:
            _MADE.clear()
        made = _MADE[key] = kind(*fields)
    return made


class VerdictBuilder:
    """Collects checks in any order and emits them in ``CHECKS`` order, every id present exactly once."""

    def __init__(self, input_name: str, sha256: str | None):
        self.verdict = Verdict(input_name, sha256)
        self._checks: dict[str, Check] = {}

    def add(self, check_id: str, status: Status, reason: str) -> None:
        if status.__class__ is not Status:
            raise TypeError(f"check {check_id}: status {status!r} is not a Status")
        self.add_check(_once(Check, check_id, status, reason))

    def add_check(self, check: Check) -> None:
        """Record a check (also one made elsewhere, e.g. a remembered one): a known id, recorded once."""
        if check.id not in CHECKS:
            raise KeyError(f"unknown check id {check.id}")
        if check.id in self._checks:
            raise ValueError(f"check {check.id} recorded twice")
        self._checks[check.id] = check

    @property
    def checks(self) -> tuple[Check, ...]:
        """The checks recorded so far, in the order they were recorded."""
        return tuple(self._checks.values())

    def has(self, check_id: str) -> bool:
        return check_id in self._checks

    def status(self, check_id: str) -> Status | None:
        check = self._checks.get(check_id)
        return check.status if check else None

    def finding(self, finding_id: str, severity: str, message: str) -> None:
        self.verdict.findings.append(_once(Finding, finding_id, severity, message))

    def finish(self, default_reason: str = "not run") -> Verdict:
        self.verdict.checks = [self._checks.get(cid) or _once(Check, cid, Status.SKIPPED, default_reason) for cid in CHECKS]
        return self.verdict


def error_verdict(input_name: str, sha256: str | None, message: str, hint: str | None = None) -> Verdict:
    """The verdict of an input that could not be read or parsed: format fails, nothing else can run."""
    b = VerdictBuilder(input_name, sha256)
    b.add("format", Status.FAIL, message)
    verdict = b.finish("not run: the input could not be read or parsed")
    verdict.hint = hint
    return verdict
