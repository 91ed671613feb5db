"""Systematic log follow-up (loggkontroll) of record-access logs.

Care providers must check their access logs systematically and document the checks
(Patientdatalagen 4:3, HSLF-FS 2016:40 4:9); municipalities run the same monthly follow-up
for social services. Per tenant and system a :mod:`plan <norrvakt.followup.plans>` names a
reviewer and a sample size; each period :mod:`sampling` draws random accesses plus the
targeted ones (protected identities, no case relation, after hours, volume outliers, shared
surname or address); the reviewer decides each one, an unjustified access opens a case, and
the sign-off is journaled so the check itself is evidence (:mod:`service`).
"""
