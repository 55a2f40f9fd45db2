"""csvverify: offline verification and audit of Hygon CSV attestation reports."""

__version__ = "0.1.0"
