"""Cases for the judges in tcplab.judges.retries (K01-K04), from the runs of this kernel
(6.18) and from the kernels and mistakes the rules must tell apart."""

from __future__ import annotations

from judge_case import Case
from tcplab.judges.retries import (
    Abandoned,
    OrphanRetries,
    Retries2UserTimeout,
    SynAckRetries,
    SynRetries,
)
from tcplab.verdict import Verdict

C, P, R = Verdict.CONFIRMED, Verdict.PARTLY, Verdict.REFUTED

LINEAR_3_4 = (0.0, 1.02, 2.04, 3.06, 4.09, 5.11, 7.13, 11.22)
CASES = [
    Case("K01", "6.18: 3 + 4 linear timeouts = 7 retransmissions, failed at 19.4 s",
         SynRetries(3, 4, LINEAR_3_4, 19.42, "ETIMEDOUT", 6, 4), P,
         ("8 SYNs", "7 = tcp_syn_retries + 4", "Linux 6.5", "last SYN at 68.3 s")),
    Case("K01", "a kernel without linear timeouts: 3 retransmissions, doubling",
         SynRetries(3, 0, (0.0, 1.0, 3.0, 7.0), 15.0, "ETIMEDOUT", 6, 0), P,
         ("3 retransmissions", "last SYN at 63.0 s")),
    Case("K01", "the count is tcp_syn_retries and 67 s follows (a kernel that counts as the "
         "documentation does, linear timeouts added to the schedule only)",
         SynRetries(10, 4, (0.0, 1, 2, 3, 4, 5, 7, 11, 19, 35, 67), 131.0, "ETIMEDOUT", 10, 4),
         C, ("11 SYNs", "67.0 s")),
    Case("K01", "projected just outside 5% of 67 s (first interval 1.06 s)",
         SynRetries(6, 4, (0.0, 1.06, 2.12, 3.18, 4.24, 5.3, 7.42, 11.66, 20.14, 37.1, 71.02),
                    139.0, "ETIMEDOUT", 6, 4), P, ("71.0 s",)),
    Case("K01", "connect() never failed", SynRetries(3, 4, LINEAR_3_4, None, None, 6, 4), R,
         ("after never",)),
    Case("K01", "intervals doubling from the first (no linear timeouts though 4 were set)",
         SynRetries(3, 4, (0.0, 1.0, 3.0, 7.0), 15.0, "ETIMEDOUT", 6, 4), R,
         ("not linear-then-doubling",)),
    Case("K01", "nothing captured", SynRetries(3, 4, (), None, None), R, ("0 SYNs",)),
]

CASES += [
    Case("K02", "6.18: 2 retransmissions, dropped after 7.1 s; 31.4 / 63.9 s projected",
         SynAckRetries(2, (0.0, 1.02, 3.04), 7.11, 5), C,
         ("3 SYN-ACKs", "7.11 s", "31.6 s")),
    Case("K02", "one retransmission more than tcp_synack_retries",
         SynAckRetries(2, (0.0, 1.0, 3.0, 7.0), 15.0, 5), P, ("3 retransmissions",)),
    Case("K02", "dropped long after the model (the count right)",
         SynAckRetries(2, (0.0, 1.0, 3.0), 12.0, 5), P, ("modelled 7.00 s",)),
    Case("K02", "a first interval of 1.1 s: 34.1 s projected, outside 5% of 31 s",
         SynAckRetries(2, (0.0, 1.1, 3.3), 7.7, 5), P, ("34.1 s",)),
    Case("K02", "the request was never dropped", SynAckRetries(2, (0.0, 1.0, 3.0), None, 5), R,
         ("dropped after never",)),
    Case("K02", "no SYN-ACK captured", SynAckRetries(2, (), None), R, ("0 SYN-ACKs",)),
]

RTX = (0.21, 0.42, 0.84, 1.66, 3.33)  # a tail loss probe, then RTOs from 0.21 s doubling
ON_RETRIES2 = Abandoned(RTX, 6.69, "ETIMEDOUT")
ON_USER = (Abandoned(RTX[:4], 2.43, "ETIMEDOUT"), Abandoned(RTX, 5.46, "ETIMEDOUT"))
CASES += [
    Case("K03", "6.18: killed at the first RTO past 3.0 s; the options rule; 935 s projected",
         Retries2UserTimeout(3, ON_RETRIES2, (2000, 5000), ON_USER, 15, 120000), C,
         ("6.69 s", "as N=3", "2.43 s", "935.04 s", "924.6")),
    Case("K03", "TCP_USER_TIMEOUT ignored: both killed with tcp_retries2",
         Retries2UserTimeout(3, ON_RETRIES2, (2000, 5000),
                             (ON_RETRIES2, ON_RETRIES2), 15, 120000), P,
         ("TCP_USER_TIMEOUT=2000 ms",)),
    Case("K03", "killed one doubled RTO late, though tcp_retries2 is 3",
         Retries2UserTimeout(3, Abandoned((*RTX, 6.66), 13.3, "ETIMEDOUT"), (2000,),
                             ON_USER[:1], 15, 120000), P, ("as N=5",)),
    Case("K03", "a TCP_RTO_MAX of 60 s: 15 retries project far from 924.6 s",
         Retries2UserTimeout(3, ON_RETRIES2, (2000, 5000), ON_USER, 15, 60000), P),
    Case("K03", "never killed within the wait",
         Retries2UserTimeout(3, Abandoned(RTX, None, None), (2000,), ON_USER[:1], 15, 120000),
         R, ("given up after never",)),
    Case("K03", "reset instead of timed out",
         Retries2UserTimeout(3, Abandoned(RTX, 0.5, "ECONNRESET"), (), (), 15, 120000), R,
         ("ECONNRESET",)),
]

ORPHAN = (0.21, 0.42, 0.85, 1.68, 3.34, 6.74, 13.39, 26.70, 53.84)
CASES += [
    Case("K04", "6.18: 8 and 0 both dropped after ~107 s (N=8)",
         OrphanRetries(8, Abandoned(ORPHAN, 106.9), Abandoned(ORPHAN, 107.1), 0, 0), C,
         ("as N=8", "106.90 s", "107.10 s")),
    Case("K04", "0 taken literally: dropped at the second RTO",
         OrphanRetries(8, Abandoned(ORPHAN, 106.9), Abandoned(ORPHAN[:2], 0.85), 0, 0), P,
         ("as N=0",)),
    Case("K04", "0 taken as 7: dropped after ~53 s",
         OrphanRetries(8, Abandoned(ORPHAN, 106.9), Abandoned(ORPHAN[:8], 53.5), 0, 0), P,
         ("as N=7",)),
    Case("K04", "the set value 2 ruled (3.4 s), 0 as 8",
         OrphanRetries(2, Abandoned(ORPHAN[:4], 3.39), Abandoned(ORPHAN, 107.0), 0, 0), C,
         ("as N=2",)),
    Case("K04", "the zero orphan was never dropped",
         OrphanRetries(8, Abandoned(ORPHAN, 106.9), Abandoned(ORPHAN, None), 0, 0), R,
         ("after never",)),
]
