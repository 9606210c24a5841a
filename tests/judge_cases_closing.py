"""Cases for the judges in tcplab.judges.closing."""

from __future__ import annotations

from judge_case import Case
from tcplab.judges.closing import (
    FinAckedByKernel,
    FinAckTogether,
    GracefulClose,
    HalfClose,
    SimultaneousClose,
    StatesObserved,
    SynRecvLinger,
    WhoHoldsTimeWait,
)
from tcplab.verdict import Verdict

C, R = Verdict.CONFIRMED, Verdict.REFUTED
EST, FW1, FW2, TW, CW, LA = ("ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT",
                             "CLOSE_WAIT", "LAST_ACK")

CASES = [
    Case("C02", "snapshots only: FIN_WAIT1 too brief to be sampled",
         GracefulClose((EST, FW2, TW), (EST, CW, LA, None)), C, ("TIME_WAIT", "snapshots")),
    Case("C02", "traced: every transition of both ends",
         GracefulClose((EST, FW2, TW), (EST, CW, LA, None),
                       ("ESTABLISHED", FW1, FW2, TW), ("ESTABLISHED", CW, LA, "CLOSE")), C),
    Case("C02", "traced, and the closer never passed FIN_WAIT1",
         GracefulClose((EST, FW2, TW), (EST, CW, LA, None), (EST, FW2, TW), (EST, CW, LA)), R),
    Case("C02", "the closer went from FIN_WAIT2 straight to gone (no TIME_WAIT)",
         GracefulClose((EST, FW2, None), (EST, CW, LA, None)), R, ("gone",)),
    Case("C02", "nothing observed at all", GracefulClose((), ()), R, ("nothing seen",)),
    Case("C03", "the kernel acked the FIN, the app read EOF, close() sent the FIN",
         FinAckedByKernel(True, 1, 0, 0, True, LA), C, ("Recv-Q 1",)),
    Case("C03", "the closer stayed in FIN_WAIT1 until the app read: the app acked",
         FinAckedByKernel(False, 1, 0, 0, True, LA), R),
    Case("C03", "the read returned data, not end-of-file",
         FinAckedByKernel(True, 1, 10, 0, True, LA), R, ("10 bytes",)),
    Case("C03", "the kernel closed the socket when EOF was read (no close() needed)",
         FinAckedByKernel(True, 1, 0, 0, False, LA), R, ("did not stay",)),
    Case("C03", "nothing known after the read",
         FinAckedByKernel(True, None, None, None, False, None), R),
    Case("C10", "the closer holds TIME_WAIT with its timer; the peer went away",
         WhoHoldsTimeWait(TW, 59.9, (EST, CW, LA, None)), C, ("59.9 s left",)),
    Case("C10", "both ends in TIME_WAIT",
         WhoHoldsTimeWait(TW, 59.9, (EST, CW, LA, TW)), R, ("through TIME_WAIT",)),
    Case("C10", "the closer skipped TIME_WAIT", WhoHoldsTimeWait(None, None, (EST, CW, LA, None)),
         R, ("no timewait timer",)),
]

CL = "CLOSING"
CROSS = dict(client_fin_t=0.1500, server_fin_t=0.150004, client_fin_acked_t=1.15,
             server_fin_acked_t=1.15)
CASES += [
    Case("C06", "the FINs crossed; both ends traced and seen in CLOSING",
         SimultaneousClose((EST, FW1, CL, TW), (EST, FW1, CL, TW), (EST, FW1, CL, TW),
                           (EST, FW1, CL, TW), closing_held_s=1.01, **CROSS),
         C, ("4 µs apart", "1000.0 ms", "traced and snapshot", "1.01 s")),
    Case("C06", "the FINs crossed; CLOSING traced only (ACKs not held), no snapshot saw it",
         SimultaneousClose((EST, FW1, TW), (EST, FW1, TW), (EST, FW1, CL, TW),
                           (EST, FW1, CL, TW), **CROSS), C, ("client: traced,",)),
    Case("C06", "the FINs crossed, but one end went FIN_WAIT1 -> TIME_WAIT without CLOSING",
         SimultaneousClose((EST, FW1, CL, TW), (EST, FW1, TW), (EST, FW1, CL, TW),
                           (EST, FW1, TW), **CROSS), R, ("server: never",)),
    Case("C06", "the server's FIN was acked before the client's left (no crossing)",
         SimultaneousClose((EST, FW1, CL, TW), (EST, FW1, FW2, TW), client_fin_t=0.2,
                           server_fin_t=0.1, client_fin_acked_t=0.3, server_fin_acked_t=0.15),
         R, ("did not cross",)),
    Case("C06", "nothing captured, nothing seen", SimultaneousClose(), R,
         ("not captured", "client: never")),
]

SEG = "server -> client: FIN,ACK seq=1 ack=2 win=64"
CASES += [
    Case("C05", "FIN+ACK in one segment; FIN_WAIT2 traced for 4 µs inside it, never seen",
         FinAckTogether(1, SEG, (EST, TW), (EST, FW1, FW2, TW), 4.0, 0), C,
         ("went TIME_WAIT as a poll", "note", "4 µs", "attempt 1")),
    Case("C05", "a kernel that moves FIN_WAIT1 -> TIME_WAIT in one step",
         FinAckTogether(2, SEG, (EST, FW1, TW), (EST, FW1, TW)), C, ("attempt 2",)),
    Case("C05", "snapshots only, FIN_WAIT2 never seen", FinAckTogether(1, SEG, (EST, FW1, TW)), C),
    Case("C05", "FIN_WAIT2 held 5 ms after the combined segment (traced), a poll could see it",
         FinAckTogether(1, SEG, (EST, TW), (EST, FW1, FW2, TW), 5000.0, 0), R,
         ("FIN_WAIT2 lasted 5000 µs",)),
    Case("C05", "a segment from the server arrived while FIN_WAIT2 lasted",
         FinAckTogether(1, SEG, (EST, TW), (EST, FW1, FW2, TW), 40.0, 1), R, ("1 segments",)),
    Case("C05", "a snapshot saw FIN_WAIT2 after the combined segment",
         FinAckTogether(1, SEG, (EST, FW2, TW)), R, ("seen by a snapshot",)),
    Case("C05", "the combined segment never happened in 5 attempts",
         FinAckTogether(5, None, (EST, FW2, TW), (EST, FW1, FW2, TW), 30000.0, 0), R,
         ("none of 5 attempts",)),
]

ALL = ("CLOSED", "CLOSE_WAIT", CL, "ESTABLISHED", FW1, FW2, LA, "LISTEN", "SYN_RECV",
       "SYN_SENT", TW)
PARTS = ("listen", "syn-sent", "syn-recv", "fin-wait1", "closing", "graceful-close", "closed")
CASES += [
    Case("C01", "every state held about a second and seen by snapshots",
         StatesObserved(tuple((s, 1.0 + i / 100) for i, s in enumerate(ALL)), ALL, PARTS), C,
         ("11 of 11", "shortest stretch CLOSED 1.00 s")),
    Case("C01", "a holder failed, but its state was still seen elsewhere",
         StatesObserved(tuple((s, 1.0) for s in ALL), ALL, PARTS, ("fin-wait1: boom",)), C,
         ("failed: fin-wait1: boom",)),
    Case("C01", "CLOSING only in the kernel's traced transitions (microseconds, no snapshot)",
         StatesObserved(tuple((s, 1.0) for s in ALL if s != CL), ALL, PARTS), Verdict.PARTLY,
         ("10 of 11", "only in the kernel's traced transitions: CLOSING")),
    Case("C01", "SYN_RECV neither seen nor traced (its holder failed)",
         StatesObserved(tuple((s, 1.0) for s in ALL if s != "SYN_RECV"),
                        tuple(s for s in ALL if s != "SYN_RECV"), PARTS,
                        ("syn-recv: ExpectationFailed: expected SYN_RECV",)), R,
         ("neither seen nor traced: SYN_RECV",)),
    Case("C01", "nothing at all", StatesObserved((), ()), R, ("0 of 11",)),
]

CASES += [
    Case("C07", "brief when ordinary, held by a lost ACK, and by a full queue and DEFER_ACCEPT",
         SynRecvLinger(5.0, False, 1.0, 1.0, 1, 1.0), Verdict.PARTLY,
         ("5 µs", "a full accept queue and TCP_DEFER_ACCEPT", "1 ACK(s)")),
    Case("C07", "held by a full accept queue only (no DEFER_ACCEPT measured)",
         SynRecvLinger(5.0, False, 1.0, 1.0, None, None), Verdict.PARTLY,
         ("not the only way: a full accept queue",)),
    Case("C07", "brief, held only while the ACK is lost; the other listeners completed at once",
         SynRecvLinger(5.0, False, 1.0, 0.0, 1, 0.0), C, ("0.00 s",)),
    Case("C07", "a full-queue hold whose client never re-sent its ACK is not another way",
         SynRecvLinger(5.0, False, 1.0, 1.0, 0, 0.0), C, ("0 ACK(s)",)),
    Case("C07", "the lost ACK held SYN_RECV only 0.89 s (just under the 0.9 s tolerance)",
         SynRecvLinger(5.0, False, 0.89, 1.0, 1, 1.0), R, ("0.89 s",)),
    Case("C07", "an ordinary handshake's SYN_RECV lasted 2 ms and a snapshot saw it",
         SynRecvLinger(2000.0, True, 1.0, 0.0, 1, 0.0), R, ("2000 µs", "seen by a snapshot")),
    Case("C07", "not traced: brief judged on snapshots alone",
         SynRecvLinger(None, False, 1.0, 0.0, None, 0.0), C, ("untimed",)),
    Case("C07", "nothing measured", SynRecvLinger(None, False, None), R, ("not measured",)),
]

N = 150_000
CASES += [
    Case("C09", "every byte arrived intact, client FIN_WAIT2, server CLOSE_WAIT throughout",
         HalfClose(N, N, True, (FW2,) * 5, (CW,) * 5, TW), C,
         ("150000 bytes, 150000 arrived", "TIME_WAIT")),
    Case("C09", "the client saw end-of-file early: part of the data lost",
         HalfClose(N, 30_000, False, (FW2,) * 5, (CW,) * 5, TW), R, ("30000 arrived",)),
    Case("C09", "all arrived, but the client's FIN had moved the server on (not half-closed)",
         HalfClose(N, N, True, (FW2, TW), (CW, None), TW), R, ("FIN_WAIT2/TIME_WAIT",)),
    Case("C09", "same byte count, different bytes", HalfClose(N, N, False, (FW2,), (CW,), TW),
         R, ("sha256 differs",)),
    Case("C09", "nothing sent, nothing seen", HalfClose(0, 0, False), R, ("nothing seen",)),
]
