"""Cases for the judges in tcplab.judges.closewait."""

from __future__ import annotations

from judge_case import Case
from tcplab.judges.closewait import (
    FORKED,
    ONE,
    THREADS,
    KeepAliveCloser,
    KillTheOwner,
    LeakPair,
    LeakPath,
    OwnerKill,
    PassiveCloseWait,
    PoolLeak,
    ReturnWithoutClose,
    StateTools,
)
from tcplab.verdict import Verdict

C, P, R = Verdict.CONFIRMED, Verdict.PARTLY, Verdict.REFUTED
EST, FW1, FW2, TW, CW, LA = ("ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT",
                             "CLOSE_WAIT", "LAST_ACK")
CLOSER = (EST, FW1, FW2, None)
PASSIVE = (EST, CW, None)
EOF_LEAK = LeakPath("end of file", "EOF", CW, True)
CUT_LEAK = LeakPath("request cut short", "RemoteProtocolError", CW, True)
RESET_LEAK = LeakPath("reset", "ECONNRESET", "CLOSED", True)
PAIR = dict(pair_seen=True, orphan_linger_s=1.0, orphan_timer_s=1.0, close_wait_stayed=True,
            watched_s=3.0, half_timer_s=None, half_pair_stayed=True, tcp_fin_timeout_s=60)
POOL = dict(pool_size=4, close_wait=4, recv_q=(2001,) * 4, dry_before=True,
            dry_in_close_wait=True, waited_s=0.2, freed_by_closing=True, tidy_close_wait=4)
ONE_OK = OwnerKill(ONE, 3, (100,), (100,), 1, (0,))
THREADS_OK = OwnerKill(THREADS, 3, (200,), (200,), 4, (0,))
FORKED_KEPT = OwnerKill(FORKED, 3, (300, 301), (300, 301), 1, (3, 0))
KA = dict(idle_closed=1, server_path=(EST, FW2, TW), client_path=(EST, CW, LA, None),
          server_timewait_s=59.9, contrast_client_timewait_s=59.9,
          contrast_server_path=(EST, CW, LA, None))
COUNTS = {EST: 6, TW: 3, CW: 2, FW2: 2}
TOOLS = dict(kernel_counts=COUNTS, netstat_counts=dict(COUNTS), sockets=14, owned=9,
             lsof_right=9, lsof_wrong=0, netstat_right=14, netstat_wrong=0)

CASES = [
    Case("C18", "CLOSE_WAIT on the server only, 3 s with no timer, close() ended it",
         PassiveCloseWait(CLOSER, PASSIVE, 3.0, "off", None, True), C, ("3.0 s", "off")),
    Case("C18", "close() moved it to LAST_ACK (the peer still there)",
         PassiveCloseWait(CLOSER, (EST, CW, LA, None), 3.0, "off", LA, True), C, ("LAST_ACK",)),
    Case("C18", "a kernel timer on CLOSE_WAIT: something other than the app would end it",
         PassiveCloseWait(CLOSER, PASSIVE, 3.0, "keepalive", None, True), R, ("keepalive",)),
    Case("C18", "CLOSE_WAIT ended by itself after 0.5 s",
         PassiveCloseWait(CLOSER, PASSIVE, 0.5, "off", None, True), R, ("0.5 s",)),
    Case("C18", "the closer went CLOSE_WAIT too",
         PassiveCloseWait((EST, CW, None), PASSIVE, 3.0, "off", None, True), R),
    Case("C18", "close() did not end it",
         PassiveCloseWait(CLOSER, PASSIVE, 3.0, "off", CW, False), R, ("did not end it",)),
    Case("C19", "EOF and a cut-short request both leave CLOSE_WAIT; the fix leaves nothing",
         ReturnWithoutClose((EOF_LEAK, CUT_LEAK), (LeakPath("end of file", "EOF", None, False),),
                            ("leak check: 2",)), C, ("leak check: 2", "fd held")),
    Case("C19", "a reset path leaves the fd on a CLOSED socket, no CLOSE_WAIT",
         ReturnWithoutClose((EOF_LEAK, RESET_LEAK)), P, ("ECONNRESET", "CLOSED", "never show")),
    Case("C19", "the EOF path left nothing: the runtime closed it",
         ReturnWithoutClose((LeakPath("end of file", "EOF", None, False), CUT_LEAK)), R),
    Case("C19", "the fixed handler still left CLOSE_WAIT",
         ReturnWithoutClose((EOF_LEAK,), (LeakPath("end of file", "EOF", CW, True),)), R),
    Case("C19", "no path was run", ReturnWithoutClose(()), R, ("no path run",)),
    Case("C20", "the orphan's FIN_WAIT2 ended after 1 s, CLOSE_WAIT stayed",
         LeakPair(orphan_lasted_s=1.0, **PAIR), P, ("ended after 1.0 s", "stayed")),  # type: ignore[arg-type]
    Case("C20", "the orphan's FIN_WAIT2 outlived the watch, as the CLOSE_WAIT did",
         LeakPair(orphan_lasted_s=None, **PAIR), C, ("was still there",)),  # type: ignore[arg-type]
    Case("C20", "no FIN_WAIT2 faced the CLOSE_WAIT",
         LeakPair(**{**PAIR, "pair_seen": False}, orphan_lasted_s=None), R, ("not seen",)),  # type: ignore[arg-type]
    Case("C21", "four CLOSE_WAIT, the pool dry, closing the responses frees it",
         PoolLeak(**POOL), C, ("4 of 4", "failed waiting")),  # type: ignore[arg-type]
    Case("C21", "a request still got a connection while they were in CLOSE_WAIT",
         PoolLeak(**{**POOL, "dry_in_close_wait": False}), R, ("got a connection",)),  # type: ignore[arg-type]
    Case("C21", "the server never closed them: no CLOSE_WAIT",
         PoolLeak(**{**POOL, "close_wait": 0}), R, ("0 of 4",)),  # type: ignore[arg-type]
    Case("C24", "a single process, a threaded one and a forked server: the server's child "
         "inherited the sockets and kept them after the server's death",
         KillTheOwner((ONE_OK, THREADS_OK, FORKED_KEPT)), P,
         ("3 left after 1 kill, 0 left after 2 kills", "4 threads of pid 200", "last process")),
    Case("C24", "the forked server's child had closed its inherited fds: one kill freed all",
         KillTheOwner((ONE_OK, THREADS_OK, OwnerKill(FORKED, 3, (300, 301), (300, 301), 1, (0, 0)))), C,
         ("0 left after 1 kill",)),
    Case("C24", "no forked owner tried: the single and threaded owners alone",
         KillTheOwner((ONE_OK, THREADS_OK)), C, ("inherited fds not tried",)),
    Case("C24", "killing the single owner left its sockets",
         KillTheOwner((OwnerKill(ONE, 3, (100,), (100,), 1, (3,)), THREADS_OK, FORKED_KEPT)), R,
         ("3 left after 1 kill",)),
    Case("C24", "killing the threaded owner left them (a thread survived with the fd table)",
         KillTheOwner((ONE_OK, OwnerKill(THREADS, 3, (200,), (200,), 4, (3,)), FORKED_KEPT)), R),
    Case("C24", "the threaded owner not tried",
         KillTheOwner((ONE_OK, FORKED_KEPT)), R),
    Case("C24", "the scan did not name the server's child",
         KillTheOwner((ONE_OK, THREADS_OK, OwnerKill(FORKED, 3, (300, 301), (300,), 1, (3, 0)))), R,
         ("the scan named [300]",)),
    Case("C24", "killing the server and its child left CLOSE_WAIT",
         KillTheOwner((ONE_OK, THREADS_OK, OwnerKill(FORKED, 3, (300, 301), (300, 301), 1, (3, 3)))), R),
    Case("C24", "nothing tried", KillTheOwner(()), R, ("no owner tried",)),
    Case("C39", "the server holds TIME_WAIT; a client closing after its FIN_WAIT2 ran out: none",
         KeepAliveCloser(**KA, late_fin_wait2_s=1.0, late_server_path=(EST, FW2, None),  # type: ignore[arg-type]
                         late_server_timewait_s=None), P, ("no TIME_WAIT",)),
    Case("C39", "the server holds TIME_WAIT whenever the client closes",
         KeepAliveCloser(**KA, late_fin_wait2_s=1.0, late_server_path=(EST, FW2, TW),  # type: ignore[arg-type]
                         late_server_timewait_s=58.0), C, ("59.9 s",)),
    Case("C39", "the late trial not run: the prompt close alone",
         KeepAliveCloser(**KA), C),  # type: ignore[arg-type]
    Case("C39", "the client ended in TIME_WAIT too",
         KeepAliveCloser(**{**KA, "client_path": (EST, CW, LA, TW)}), R),  # type: ignore[arg-type]
    Case("C39", "the server's timeout closed nothing",
         KeepAliveCloser(**{**KA, "idle_closed": 0, "server_timewait_s": None}), R),  # type: ignore[arg-type]
    Case("C40", "counts equal, every owned socket right, 3 TIME_WAIT not in lsof",
         StateTools(**TOOLS, lsof_missing={TW: 3, FW2: 2}), P,  # type: ignore[arg-type]
         ("equal", "3 TIME_WAIT", "no owner")),
    Case("C40", "every socket held by a process: lsof lists them all",
         StateTools(**{**TOOLS, "owned": 14, "lsof_right": 14}, lsof_missing={}), C,  # type: ignore[arg-type]
         ("not in lsof -i: none",)),
    Case("C40", "netstat | awk miscounted",
         StateTools(**{**TOOLS, "netstat_counts": {EST: 5}}, lsof_missing={}), R, ("different",)),  # type: ignore[arg-type]
    Case("C40", "lsof gave a wrong owner",
         StateTools(**{**TOOLS, "lsof_right": 8, "lsof_wrong": 1}, lsof_missing={TW: 3}), R),  # type: ignore[arg-type]
    Case("C40", "netstat not run", StateTools(**{**TOOLS, "netstat_counts": None},  # type: ignore[arg-type]
                                              lsof_missing={}), R, ("None",)),
]
